"""A student checkpoint as an MLflow pyfunc model: a list of instructions in, answers out.

Logged as "models from code" (this file is the model's code, the checkpoint folder its
artifact), because mlflow.transformers.log_model fails with transformers 5 here.
    mlflow.pyfunc.load_model("models:/kdscale-student@n320").predict(["Name three colours."])
"""

import mlflow


class StudentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from kdscale.models import load_model

        self.model, self.tokenizer = load_model(context.artifacts["checkpoint"], "checkpoint")

    def predict(self, context, model_input: list[str], params: dict | None = None) -> list[str]:
        from kdscale.engines.generation import DecodeParams, generate_all
        from kdscale.prompts import alpaca_prompt

        params = params or {}
        prompts = [alpaca_prompt(instruction) for instruction in model_input]
        if not prompts:
            return []
        decode = DecodeParams(max_new_tokens=int(params.get("max_new_tokens", DecodeParams.max_new_tokens)))
        answers = generate_all(self.model, self.tokenizer, prompts, decode, int(params.get("batch_size", 8)))
        return [a.text for a in answers]


mlflow.models.set_model(StudentModel())
