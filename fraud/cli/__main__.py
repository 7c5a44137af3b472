from fraud.cli.app import main

main()
