"""The engines that generate answers: the in-process decoder (`generation`: a KV-cache loop of our own,
and vLLM's in-process engine behind the same contract) and a teacher behind an OpenAI-compatible server
(`served`). The teacher stage picks one by `teacher.backend`; evaluation uses the in-process decoder."""
