"""The test suite: tests/<part>/ mirrors blitzmask_deploy/<part>/; tests/support/ holds the test rig."""
