"""``python -m netkit`` runs the same entry point as the ``netkit`` script."""

from netkit.cli.main import main

if __name__ == "__main__":
    main()
