from kdscale.cli import main

main()
