"""`python -m blitzmask_deploy ...` (and `torchrun -m blitzmask_deploy train ...`): the `blitzmask` CLI."""

from blitzmask_deploy.cli.app import main

main()
