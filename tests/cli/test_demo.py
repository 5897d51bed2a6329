"""`emgeom demo` runs all three capabilities on bundled data and tells the truth about them."""

from __future__ import annotations

from emgeom.cli import main


def test_demo_report_and_figures(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out)]) == 0
    report = (out / "report.txt").read_text()
    assert "-Mag 1.011726 0.989718 58.875" in report
    xmag = [line for line in report.splitlines() if "View 256²" in line]
    assert len(xmag) == 2 and all("found=True" in line for line in xmag)
    errors = [float(line.split("error ")[1].split(" View px")[0]) for line in xmag]
    assert max(errors) < 1.0
    assert "pure noise: found=False" in report
    assert "rotation 30.00° (true 30.00°)" in report
    assert "shift (23.00, -14.00) px (true 23, -14)" in report  # masked NCC on the micrograph
    assert "they DISAGREE" in report  # WarpTools export vs AreTomo3 on the same real series
    assert "check_hand decided h = -1" in report
    realign = [line for line in report.splitlines() if line.startswith("  realign: ")]
    assert len(realign) == 1 and "found=True" in realign[0]
    assert float(realign[0].split("position error ")[1].split(" map px")[0]) < 1.0
    assert "matches PtsX/PtsY to 0.43 nm" in report
    for name in (
        "anisomag_ellipse.png",
        "crossmag_overlay.png",
        "hand_slopes.png",
        "micrograph_corrected.mrc",
        "anisomag.json",
    ):
        assert (out / name).stat().st_size > 1000, name
    assert main(["demo", "--output", str(out)]) == 2  # never reuses a folder without --force
    assert main(["demo", "--output", str(out), "--force"]) == 0
