import pytest

from netkit.core.errors import InputError
from netkit.core.targets import Target, expand_target, parse_ports, parse_target, target_from_args


def test_forms() -> None:
    assert parse_target("localhost:80") == Target("localhost", 80)
    assert parse_target("[::1]:8000") == Target("::1", 8000)
    assert str(Target("::1", 8000)) == "[::1]:8000"
    assert target_from_args(["127.0.0.1", "22"]) == Target("127.0.0.1", 22)
    assert expand_target("h:22,80,8000-8002") == [Target("h", p) for p in (22, 80, 8000, 8001, 8002)]
    assert parse_ports("80,80,81") == (80, 81)


@pytest.mark.parametrize(
    "text", ["", ":80", "host:0", "host:65536", "host:-1", "ho st:80", "[::1", "[::1]80", "999.1.1.1:80",
             "host:80-70", "-bad-:80", "::1"],
)
def test_bad_targets(text: str) -> None:
    with pytest.raises(InputError):
        parse_target(text)
