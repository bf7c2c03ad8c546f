"""A kernel's last log lines as a failure quotes them: never with its connection key.

EG's ``launch_ipykernel.py`` logs its whole connection file at its default level; a kernel may print
its connection info as a dict.  The lines reach the client's error and the gateway's log.
"""

from __future__ import annotations

from gateway.provisioner.podlog import MAX_CHARS, quoted_lines

KEY = "0b5e4a5e-9c8f-4d0e-8f55-4a1f8d2c7e31"


def test_egs_logged_connection_file_keeps_everything_but_the_key() -> None:
    line = ('[D 2026-12-07 07:00:00,000.000 launcher] JSON Payload \'{"shell_port": 40001, "iopub_port": 40003, '
            f'"key": "{KEY}", "signature_scheme": "hmac-sha256", "kernel_id": "k1"}}')
    quoted = quoted_lines(line + "\nOSError: [Errno 98] Address already in use\n")
    assert KEY not in quoted
    assert '"key": "<hidden>", "signature_scheme": "hmac-sha256"' in quoted
    assert quoted.endswith(" | OSError: [Errno 98] Address already in use")


def test_a_dicts_repr_and_a_bytes_key_are_hidden_too() -> None:
    assert quoted_lines(f"{{'ip': '0.0.0.0', 'key': b'{KEY}'}}") == "{'ip': '0.0.0.0', 'key': b'<hidden>'}"


def test_the_known_key_is_hidden_wherever_it_appears() -> None:
    assert quoted_lines(f"connect with --Session.key={KEY}\n", key=KEY) == "connect with --Session.key=<hidden>"
    assert KEY in quoted_lines(f"connect with --Session.key={KEY}\n")  # only a field named key is recognised unaided


def test_blank_lines_go_and_a_long_tail_keeps_its_end() -> None:
    assert quoted_lines("\n  first  \n\n second\n") == "first | second"
    long = "x" * (2 * MAX_CHARS) + "\nthe cause"
    assert len(quoted_lines(long)) == MAX_CHARS and quoted_lines(long).endswith("x | the cause")
