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


def test_a_url_gets_a_hint_not_an_ipv6_complaint() -> None:
    with pytest.raises(InputError) as exc:
        parse_target("http://host:8080/x")
    assert str(exc.value) == ("invalid target 'http://host:8080/x': a URL is not a target; "
                              "give HOST:PORT, e.g. host:8080")
    with pytest.raises(InputError, match=r"e\.g\. example\.test:443$"):
        parse_target("https://example.test")
    with pytest.raises(InputError, match=r"give HOST:PORT, or \[IPV6\]:PORT"):
        parse_target("host:80:90")


def test_lines_of_a_file_carry_their_place() -> None:
    from netkit.core.targets import check_texts, expand_texts, numbered_target_lines

    lines = ["a:1  # one\n", "\n", "# only a comment\n", "b:2 c:3\n", "bad\n"]
    items = list(numbered_target_lines(lines, "t.txt"))
    assert items == [("t.txt:1", "a:1"), ("t.txt:4", "b:2"), ("t.txt:4", "c:3"), ("t.txt:5", "bad")]
    assert check_texts(items[:3]) == 3
    with pytest.raises(InputError, match=r"^t\.txt:5: invalid target 'bad': no port"):
        check_texts(items)
    got = []
    with pytest.raises(InputError, match=r"^t\.txt:5: "):
        for t in expand_texts(items):
            got.append(t)
    assert got == [Target("a", 1), Target("b", 2), Target("c", 3)]
    with pytest.raises(InputError, match=r"^invalid port"):
        list(expand_texts([(None, "a:99999")]))  # an argument: no place in front


def test_ip_literals() -> None:
    from netkit.core.targets import is_ip_literal

    assert is_ip_literal("127.0.0.1") and is_ip_literal("::1") and is_ip_literal("fe80::1%eth0")
    assert not is_ip_literal("localhost") and not is_ip_literal("999.1.1.1")
