#!/usr/bin/env python3
"""ecgridos against zeep, side by side in one run, on the same fake server.

Measures, for GenerateAPIKey: codec cost per call (build the request + read a
reply, no I/O) and sequential calls per second against `ecgridos serve-mock`
on loopback; then the CLI's wall time and peak RSS for one rotation.
Installs zeep into bench/.venv itself. Run from the repository root:

    python3 bench/compare_zeep.py [--seconds 5]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"


def ensure_venv():
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "zeep==4.3.3"], check=True)
    return python


def zeep_side(url, key, user, seconds):
    """Runs inside the venv: prints zeep's figures as JSON."""
    import zeep
    from zeep.loader import parse_xml

    client = zeep.Client(str(ROOT / "wsdl" / "ECGridOS.wsdl"))
    svc = client.create_service("{https://os.ecgrid.io/}ECGridOSSoap", url)
    operation = svc._binding._operations["GenerateAPIKey"]
    reply = (
        b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        b'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>a1b2c3d4-e5f6-7890-abcd-ef1234567890'
        b"</GenerateAPIKeyResult></GenerateAPIKeyResponse></soap:Body></soap:Envelope>"
    )
    from lxml import etree

    def codec(n):
        started = time.perf_counter()
        for _ in range(n):
            message = client.create_message(svc, "GenerateAPIKey", SessionID=key, UserID=user)
            etree.tostring(message)
            operation.process_reply(parse_xml(reply, client.transport, settings=client.settings))
        return (time.perf_counter() - started) / n * 1e9

    codec(500)
    codec_ns = codec(5000)
    current = key
    for _ in range(50):
        current = svc.GenerateAPIKey(SessionID=current, UserID=user)
    started = time.perf_counter()
    calls = 0
    while time.perf_counter() - started < seconds:
        current = svc.GenerateAPIKey(SessionID=current, UserID=user)
        calls += 1
    print(json.dumps({"codec_ns": codec_ns, "calls_per_sec": calls / (time.perf_counter() - started)}))


def cli_rotation(binary, url, key, user, runs=9):
    """Median wall time (timed here: /usr/bin/time reports only 10 ms steps)
    and peak RSS (from /usr/bin/time -v) of one `ecgridos generate-api-key`."""
    walls, rss = [], []
    for i in range(runs):
        env = dict(os.environ, ECGRID_ENDPOINT=url, ECGRID_API_KEY=key)
        measure_rss = i % 2 == 1
        command = [binary, "generate-api-key", "--user-id", str(user), "--yes"]
        if measure_rss:
            command = ["/usr/bin/time", "-v"] + command
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if result.returncode != 0:
            raise SystemExit(f"CLI rotation failed: {result.stderr}")
        key = result.stdout.strip()
        if measure_rss:
            for line in result.stderr.splitlines():
                line = line.strip()
                if line.startswith("Maximum resident set size"):
                    rss.append(int(line.rsplit(" ", 1)[1]) / 1024)
        else:
            walls.append(elapsed_ms)
    return statistics.median(walls), max(rss), key


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--zeep-side", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.zeep_side:
        url, key, user, seconds = args.zeep_side
        zeep_side(url, key, int(user), float(seconds))
        return

    python = ensure_venv()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "ecgridos", "--example", "bench_probe"], cwd=ROOT, check=True)
    binary = str(ROOT / "target" / "release" / "ecgridos")
    probe = str(ROOT / "target" / "release" / "examples" / "bench_probe")
    server = subprocess.Popen([binary, "serve-mock"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        ready = json.loads(server.stdout.readline())
        url = ready["soap_url"]
        users = {u["login"]: u for u in ready["users"]}
        # Each side rotates its own user's key with that key, so both do the same work.
        alice, bob, admin = users["alice"], users["bob"], users["admin"]
        ours = json.loads(subprocess.run(
            [probe, url, alice["api_key"], str(alice["user_id"]), str(args.seconds)],
            check=True, capture_output=True, text=True).stdout)
        theirs = json.loads(subprocess.run(
            [str(python), __file__, "--zeep-side", url, bob["api_key"], str(bob["user_id"]), str(args.seconds)],
            check=True, capture_output=True, text=True).stdout)
        # The CLI rotates the admin's own key with that key.
        wall_ms, rss_mb, _ = cli_rotation(binary, url, admin["api_key"], admin["user_id"])
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"{'GenerateAPIKey':<34}{'ecgridos':>14}{'zeep':>14}{'ratio':>12}")
    print(f"{'codec (build + read), ns/call':<34}{ours['codec_ns']:>14.0f}{theirs['codec_ns']:>14.0f}"
          f"{theirs['codec_ns'] / ours['codec_ns']:>11.0f}x")
    print(f"{'sequential calls/s (loopback)':<34}{ours['calls_per_sec']:>14.0f}{theirs['calls_per_sec']:>14.0f}"
          f"{ours['calls_per_sec'] / theirs['calls_per_sec']:>11.1f}x")
    print(f"CLI, one rotation on loopback: median wall {wall_ms:.1f} ms, peak RSS {rss_mb:.1f} MB")


if __name__ == "__main__":
    main()
