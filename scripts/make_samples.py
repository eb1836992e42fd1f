"""Regenerate the synthetic sample files in samples/ (deterministic; nobody's real data)."""

from pathlib import Path

from detectors.corpus import app_log, chat, csv_dump, forum_post, json_lines, sql_dump
from detectors.synthetic import Synth

ROOT = Path(__file__).resolve().parents[1] / "samples"


def main() -> None:
    """Write one file per leak shape, seeded so reviews see stable diffs."""
    s = Synth(2026)
    files = {
        "paste/customer-dump.csv": csv_dump(s, rows=120).text,
        "paste/crm-export.jsonl": json_lines(s, rows=25).text,
        "paste/khach_hang.sql": sql_dump(s, rows=30).text,
        "forum/data-sale-post.txt": "\n".join(forum_post(s).text for _ in range(3)),
        "chat/telegram-channel.txt": chat(s, messages=40).text,
        "logs/app.log": app_log(s, lines=400).text,
        "clean/release-notes.txt": (
            "Phiên bản 2.4.1 phát hành ngày 24/11/2026. Sửa lỗi đăng nhập, cải thiện tốc độ "
            "tải trang 35%. Liên hệ bộ phận hỗ trợ qua trang web. Build 20261124.1530, "
            "commit 9f3c2e1, server 10.0.12.7, order DH20261124000123.\n"
        ),
    }
    for name, text in files.items():
        path = ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT.parent)} ({len(text.encode()):,} bytes)")


if __name__ == "__main__":
    main()
