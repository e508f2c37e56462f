"""``ecash-tpm swtpm provision|start|stop|status --state DIR``: the hermetic swtpm emulator.

``start`` provisions the directory if needed (own CA inside it, RSA-2048 and ECC P-384 EK
certificates), starts the server on free loopback ports, and prints only the TCTI string on
stdout so that ``export TPM2TOOLS_TCTI=$(ecash-tpm swtpm start --state d)`` works. ``stop`` and
``status`` work from any process: they read the pid and ports from ``DIR/instance.json``.
``status`` exits 0 when the emulator runs and 3 when it does not (like ``systemctl status``).
"""

from __future__ import annotations

import argparse
import sys

from ecash_tpm.cli.output import emit

EXIT_NOT_RUNNING = 3


def _cmd_provision(args: argparse.Namespace) -> int:
    from ecash_tpm.swtpm import SwtpmInstance

    inst = SwtpmInstance.load(args.state)
    was = inst.is_provisioned
    inst.provision(overwrite=args.force, platform_cert=args.platform_cert)
    done = ("re-provisioned" if args.force else "already provisioned") if was else "provisioned"
    emit(args, inst.status(), f"{done}: {inst.state_dir} (CA root {inst.ca_root_path})")
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    from ecash_tpm.swtpm import SwtpmInstance

    inst = SwtpmInstance.load(args.state)
    inst.tie_to_parent = False  # the emulator must outlive this command
    if not inst.is_provisioned:
        if not args.json:
            print(f"provisioning {inst.state_dir} ...", file=sys.stderr)
        inst.provision(platform_cert=args.platform_cert)
    inst.start(timeout=args.timeout)
    if not args.json:
        print(f"swtpm running, pid {inst.pid}", file=sys.stderr)
    emit(args, inst.status(), inst.tcti)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from ecash_tpm.swtpm import SwtpmInstance

    inst = SwtpmInstance.load(args.state)
    pid = inst.pid
    stopped = inst.stop()
    text = f"stopped swtpm pid {pid}" if stopped else "swtpm was not running"
    emit(args, {"stopped": stopped, "pid": pid, "state_dir": str(inst.state_dir)}, text)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ecash_tpm.swtpm import SwtpmInstance

    st = SwtpmInstance.load(args.state).status()
    if st["running"]:
        text = f"running: pid {st['pid']}, tcti {st['tcti']}"
    else:
        text = "not running" + ("" if st["provisioned"] else " (not provisioned)")
    emit(args, st, text)
    return 0 if st["running"] else EXIT_NOT_RUNNING


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``swtpm`` and its sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "swtpm",
        help="provision/start/stop a hermetic swtpm emulator",
        description="A swtpm emulator with its own CA kept inside the state directory.",
    )
    sub = parser.add_subparsers(dest="swtpm_command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state", required=True, metavar="DIR", help="state directory")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("provision", help="create the CA and TPM state (no server)")
    common(p)
    p.add_argument("--force", action="store_true", help="re-create an existing state")
    p.add_argument("--platform-cert", action="store_true", help="also make a platform cert")
    p.set_defaults(func=_cmd_provision)

    p = sub.add_parser("start", help="provision if needed, start, print the TCTI")
    common(p)
    p.add_argument("--platform-cert", action="store_true", help="also make a platform cert")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the TPM")
    p.set_defaults(func=_cmd_start)

    p = sub.add_parser("stop", help="stop the emulator recorded in the state dir")
    common(p)
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("status", help="is it running? (exit 3 if not)")
    common(p)
    p.set_defaults(func=_cmd_status)
