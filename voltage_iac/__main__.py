"""`python -m voltage_iac` runs the command line."""

from voltage_iac.cli import main

if __name__ == "__main__":
    main()
