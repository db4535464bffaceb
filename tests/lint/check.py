"""Static checks of what sagekeeper ships and writes, as `make test` runs them:

- parliament over the shipped AWS policies (`deploy/aws/**/*.json`, placeholders filled in) and
  over every policy document sagekeeper generates for a full environment, project and deployment
  (dumped by the policy crate's tests into the folder given as `--generated`);
- checkov over the Kubernetes manifests (`deploy/kubernetes/`).

Each statement is analysed on its own, so a finding names its file and `Sid`; a document
without statements of its own (none today) would not be analysed. Findings listed in
`allowed-findings.json` (each with the reason it is a false positive) pass; every other finding,
and every allow-list entry that no longer matches anything, fails the run.
"""

import argparse
import fnmatch
import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PLACEHOLDERS = {"CONTROLLER_ACCOUNT_ID": "222222222222", "ACCOUNT_ID": "111111111111", "EXTERNAL_ID": "fraud-7f3a"}


def fill(text: str) -> str:
    for name, value in PLACEHOLDERS.items():
        text = text.replace(name, value)
    return text


def policy_files(generated: pathlib.Path) -> list[tuple[str, str]]:
    shipped = sorted((ROOT / "deploy/aws").rglob("*.json"))
    files = [(str(p.relative_to(ROOT)), fill(p.read_text())) for p in shipped]
    dumped = sorted(generated.glob("*.json"))
    if not dumped:
        sys.exit(f"no generated policies in {generated}: the policy crate's tests dump them (make test)")
    files += [(f"generated/{p.name}", p.read_text()) for p in dumped]
    return files


def parliament_findings(files: list[tuple[str, str]]) -> list[dict]:
    from parliament import analyze_policy_string

    findings = []
    for name, text in files:
        document = json.loads(text)
        statements = document["Statement"]
        for index, statement in enumerate(statements if isinstance(statements, list) else [statements]):
            single = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
            sid = statement.get("Sid", f"#{index}")
            for finding in analyze_policy_string(single, filepath=name).findings:
                base = {"tool": "parliament", "file": name, "sid": sid, "id": finding.issue}
                # One finding per mismatched action, so the allow-list can excuse one action
                # (a wildcard's expansion, an action authorized on two resource types) and not
                # hide another.
                if finding.issue == "RESOURCE_MISMATCH" and isinstance(finding.detail, list):
                    for item in finding.detail:
                        findings.append({**base, "detail": f"{item['action']} needs {item['required_format']}"})
                else:
                    findings.append({**base, "detail": str(finding.detail)})
    return findings


def checkov_findings() -> list[dict]:
    checkov = pathlib.Path(sys.executable).parent / "checkov"
    out = subprocess.run(
        [str(checkov), "-d", str(ROOT / "deploy/kubernetes"), "--framework", "kubernetes", "--skip-download",
         "-o", "json", "--quiet"],
        capture_output=True, text=True, check=False,
    )
    if out.returncode not in (0, 1):
        sys.exit(f"checkov failed ({out.returncode}):\n{out.stderr}")
    report = json.loads(out.stdout) if out.stdout.strip() else {}
    reports = report if isinstance(report, list) else [report]
    findings = []
    for r in reports:
        for check in r.get("results", {}).get("failed_checks", []):
            findings.append({
                "tool": "checkov",
                "file": "deploy/kubernetes" + check["file_path"],
                "sid": check["resource"],
                "id": check["check_id"],
                "detail": check["check_name"],
            })
    return findings


def allowed(finding: dict, entry: dict) -> bool:
    return (
        entry["tool"] == finding["tool"]
        and entry["id"] == finding["id"]
        and fnmatch.fnmatch(finding["file"], entry["file"])
        and fnmatch.fnmatch(finding["sid"], entry.get("sid", "*"))
        and entry.get("detailContains", "") in finding["detail"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", type=pathlib.Path, required=True, help="folder of generated policies")
    args = parser.parse_args()
    allow_list = json.loads((HERE / "allowed-findings.json").read_text())["allowed"]
    for entry in allow_list:
        if not entry.get("reason", "").strip():
            sys.exit(f"allow-list entry without a reason: {entry}")

    files = policy_files(args.generated)
    findings = parliament_findings(files) + checkov_findings()
    used = set()
    failures = []
    for finding in findings:
        match = next((i for i, entry in enumerate(allow_list) if allowed(finding, entry)), None)
        if match is None:
            failures.append(finding)
        else:
            used.add(match)
    stale = [entry for i, entry in enumerate(allow_list) if i not in used]

    by_tool = {tool: sum(1 for f in findings if f["tool"] == tool) for tool in ("parliament", "checkov")}
    print(
        f"lint: {len(files)} policy documents, parliament {by_tool['parliament']} findings, "
        f"checkov {by_tool['checkov']} findings; {len(findings) - len(failures)} allow-listed, "
        f"{len(failures)} not"
    )
    for f in failures:
        print(f"  {f['tool']} {f['id']} in {f['file']} ({f['sid']}): {f['detail'][:300]}")
    for entry in stale:
        print(f"  allow-list entry matches nothing any more: {json.dumps(entry)}")
    return 1 if failures or stale else 0


if __name__ == "__main__":
    sys.exit(main())
