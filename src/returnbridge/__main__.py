from returnbridge.cli import main

main()
