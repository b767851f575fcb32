"""``netkit selftest``: every capability run against netkit's own servers on loopback.

Each capability adds a module ``check_<name>.py`` here defining ``ORDER: int`` and
``async def run(env: SelftestEnv) -> list[CheckResult]``; the runner discovers them, so adding
a capability never edits a shared list.
"""
