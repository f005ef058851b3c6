"""The seccomp program's shape: what bubblewrap loads must be a well-formed classic-BPF filter."""

from __future__ import annotations

import struct

import pytest

from gateway.tools import seccomp


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_program_is_well_formed(machine: str) -> None:
    program = seccomp.deny_list_program(machine)
    assert len(program) % 8 == 0
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert len(insns) <= 4096  # BPF_MAXINSNS
    for index, (code, jt, jf, _k) in enumerate(insns):
        if code & 0x07 == 0x05:  # BPF_JMP: both targets land inside the program
            assert index + 1 + max(jt, jf) < len(insns)
        if code == 0x06:  # a return is allow, kill or EPERM
            assert _k in {0x7FFF0000, 0x80000000, 0x00050001}
    assert insns[-2] == (0x06, 0, 0, 0x7FFF0000) and insns[-1] == (0x06, 0, 0, 0x00050001)
    column = 0 if machine == "x86_64" else 1
    denied = {k for code, _, _, k in insns[4:] if code == 0x15}
    assert denied == {row[column] for row in seccomp.DENIED.values()}
    assert len({row[column] for row in seccomp.DENIED.values()}) == len(seccomp.DENIED)


def test_unknown_machines_are_not_supported() -> None:
    assert seccomp.supported("x86_64") and seccomp.supported("aarch64")
    assert not seccomp.supported("riscv64")
