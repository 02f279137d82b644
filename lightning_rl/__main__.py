from lightning_rl.cli import main

main()
