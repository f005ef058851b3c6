"""A seccomp deny-list for the sandbox, as the classic-BPF program bubblewrap loads (``--seccomp FD``).

Namespaces and dropped capabilities already stop most of these calls; the filter takes away the
kernel interfaces an unprivileged process may still reach and that kernel exploits favour:
``io_uring``, ``userfaultfd``, ``bpf``, ``perf_event_open``, the key rings, ``ptrace`` and
``process_vm_*``, mount and namespace calls, ``personality`` (ASLR), modules, kexec. A denied call
fails with ``EPERM``; a call through another ABI (i386 ``int 0x80``, x32) kills the process, so the
numbers cannot be dodged. The numbers come from the kernel's headers (``asm/unistd_64.h`` for
x86-64, ``asm-generic/unistd.h`` for arm64). On another architecture there is no program and the
sandbox refuses to start unless ``sandbox.seccomp`` is switched off (fail closed).
"""

from __future__ import annotations

import errno
import platform
import struct

DENIED: dict[str, tuple[int, int]] = {
    # name: (x86-64, arm64)
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "perf_event_open": (298, 241),
    "bpf": (321, 280),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "personality": (135, 92),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "unshare": (272, 97),
    "setns": (308, 268),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "fanotify_init": (300, 262),
    "kcmp": (312, 272),
    "syslog": (103, 116),
    "acct": (163, 89),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "chroot": (161, 51),
    "quotactl": (179, 60),
    "lookup_dcookie": (212, 18),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
}

# machine -> (AUDIT_ARCH_*, column of DENIED, lowest number of a foreign ABI or None)
_ARCHES: dict[str, tuple[int, int, int | None]] = {
    "x86_64": (0xC000003E, 0, 0x40000000),  # x32 numbers have bit 30 set
    "aarch64": (0xC00000B7, 1, None),
}

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_OFFSET_NR, _OFFSET_ARCH = 0, 4  # struct seccomp_data


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in _ARCHES


def deny_list_program(machine: str | None = None) -> bytes:
    """The filter as an array of ``struct sock_filter`` for ``bwrap --seccomp``."""
    arch, column, foreign = _ARCHES[machine or platform.machine()]
    numbers = [row[column] for row in DENIED.values()]
    program = [
        _insn(_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        _insn(_JEQ_K, 1, 0, arch),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    program.append(_insn(_LD_W_ABS, 0, 0, _OFFSET_NR))
    if foreign is not None:
        program += [_insn(_JGE_K, 0, 1, foreign), _insn(_RET_K, 0, 0, _RET_KILL_PROCESS)]
    for index, number in enumerate(numbers):  # each match jumps to the EPERM return at the end
        remaining = len(numbers) - index - 1
        program.append(_insn(_JEQ_K, remaining + 1, 0, number))
    program += [_insn(_RET_K, 0, 0, _RET_ALLOW), _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM)]
    return b"".join(program)
