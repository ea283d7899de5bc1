from deepshelf.cli.main import main

main()
