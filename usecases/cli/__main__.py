from usecases.cli import main

main()
