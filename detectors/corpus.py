"""A labelled synthetic corpus: documents shaped like real leaks, with the truth attached.

Used by the quality test (precision/recall/F1 per detector) and the benchmarks. Shapes:
forum sale posts, CSV/TSV dumps, JSON lines, SQL INSERT dumps, application logs and chat
messages, with the hard negatives of ../shared/reference/vn-identifiers.md mixed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from detectors.synthetic import BANKS, Synth

Label = tuple[str, int, int]


@dataclass
class LabelledDoc:
    """Text plus the exact spans that are identifiers, by detector id."""

    kind: str
    parts: list[str] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    _size: int = 0

    def add(self, text: str) -> None:
        """Append text that holds no identifier."""
        self.parts.append(text)
        self._size += len(text)

    def ident(self, detector: str, written: str) -> None:
        """Append an identifier and remember its span."""
        self.labels.append((detector, self._size, self._size + len(written)))
        self.add(written)

    @property
    def text(self) -> str:
        """The document text."""
        return "".join(self.parts)


def _negatives(s: Synth, doc: LabelledDoc, n: int) -> None:
    for _ in range(n):
        doc.add(f" ref {s.negative()};")


def forum_post(s: Synth) -> LabelledDoc:
    """A data-sale post: prose, a few records with keyword context, look-alikes."""
    doc = LabelledDoc("forum")
    doc.add("Bán data khách hàng mới cập nhật, giá 1.500.000đ/1000 dòng. Mẫu:\n")
    for _ in range(s.rng.randint(2, 6)):
        name = s.name()
        doc.add(f"- {name}, SĐT: ")
        doc.ident("vn_phone", s.phone_written())
        doc.add(", CCCD ")
        doc.ident("vn_citizen_id", s.citizen_id())
        if s.rng.random() < 0.5:
            doc.add(f", STK {s.rng.choice(BANKS)}: ")
            doc.ident("vn_bank_account", s.bank_account())
        if s.rng.random() < 0.3:
            doc.add(", email ")
            doc.ident("email", s.email(name))
        doc.add("\n")
    doc.add("Liên hệ zalo ")
    doc.ident("vn_phone", s.phone_written())
    doc.add(" để mua. Đơn hàng")
    _negatives(s, doc, 3)
    doc.add("\n")
    return doc


def csv_dump(s: Synth, rows: int = 40) -> LabelledDoc:
    """A customer table dump; the header is the only context."""
    doc = LabelledDoc("csv")
    sep = s.rng.choice([",", "\t", ";", "|"])
    columns = ["stt", "ho_ten", "so_cccd", "ngay_sinh", "sdt", "so_tai_khoan", "ngan_hang",
               "mst", "email"]
    doc.add(sep.join(columns) + "\n")
    for i in range(rows):
        name = s.name()
        doc.add(f"{i + 1}{sep}{name}{sep}")
        doc.ident("vn_citizen_id", s.citizen_id())
        doc.add(f"{sep}{s.rng.randint(1, 28):02d}/{s.rng.randint(1, 12):02d}/"
                f"{s.rng.randint(1950, 2005)}{sep}")
        doc.ident("vn_phone", s.mobile())
        doc.add(sep)
        doc.ident("vn_bank_account", s.bank_account())
        doc.add(f"{sep}{s.rng.choice(BANKS)}{sep}")
        doc.ident("vn_tax_code", s.tax_code())
        doc.add(sep)
        doc.ident("email", s.email(name))
        doc.add("\n")
    return doc


def json_lines(s: Synth, rows: int = 20) -> LabelledDoc:
    """JSON lines as exported from a compromised CRM."""
    doc = LabelledDoc("jsonl")
    for i in range(rows):
        name = json.dumps(s.name(), ensure_ascii=False)
        doc.add(f'{{"id": {i}, "name": {name}, "cccd": "')
        doc.ident("vn_citizen_id", s.citizen_id())
        doc.add('", "phone": "')
        doc.ident("vn_phone", s.mobile())
        doc.add('", "passport_no": "')
        doc.ident("vn_passport", s.passport())
        doc.add('", "card_number": "')
        doc.ident("payment_card", s.card())
        created = s.rng.randint(1_600_000_000, 1_790_000_000)
        doc.add(f'", "order_id": "{s.negative()}", "created": {created}}}\n')
    return doc


def sql_dump(s: Synth, rows: int = 20) -> LabelledDoc:
    """A mysqldump-style INSERT with a column list."""
    doc = LabelledDoc("sql")
    doc.add("INSERT INTO `khach_hang` (`id`, `ho_ten`, `so_cmnd`, `dien_thoai`, `stk`, "
            "`so_bhyt`) VALUES\n")
    for i in range(rows):
        doc.add(f"({i + 1}, '{s.name()}', '")
        doc.ident("vn_legacy_id", s.legacy_id())
        doc.add("', '")
        doc.ident("vn_phone", s.mobile())
        doc.add("', '")
        doc.ident("vn_bank_account", s.bank_account())
        doc.add("', '")
        doc.ident("vn_health_insurance", s.health_insurance())
        doc.add("')" + (",\n" if i < rows - 1 else ";\n"))
    return doc


def app_log(s: Synth, lines: int = 60, leak_rate: float = 0.35) -> LabelledDoc:
    """Application logs: mostly look-alikes (ids, epochs, IPs), some lines leaking."""
    doc = LabelledDoc("log")
    for _ in range(lines):
        ts = f"2026-11-{s.rng.randint(1, 28):02d}T{s.rng.randint(0, 23):02d}:10:00Z"
        ip = f"10.{s.rng.randint(0, 255)}.{s.rng.randint(0, 255)}.{s.rng.randint(1, 254)}"
        roll = s.rng.random() * 0.35 / leak_rate if leak_rate else 1.0
        doc.add(f"{ts} INFO api {ip} user_id={s.digits(9)} req={s.negative()} ")
        if roll < 0.15:
            doc.add("otp sent to phone=")
            doc.ident("vn_phone", s.mobile())
        elif roll < 0.25:
            doc.add("kyc ok cccd=")
            doc.ident("vn_citizen_id", s.citizen_id())
        elif roll < 0.3:
            doc.add("payment card=")
            doc.ident("payment_card", s.card())
        elif roll < 0.35:
            doc.add("invoice mst=")
            doc.ident("vn_tax_code", s.tax_code(branch=s.rng.random() < 0.3))
        else:
            doc.add(f"latency_ms={s.rng.randint(1, 900)} ts={s.negative()}")
        doc.add("\n")
    return doc


def chat(s: Synth, messages: int = 12) -> LabelledDoc:
    """Telegram-style chat: sellers and buyers, identifiers with and without context."""
    doc = LabelledDoc("chat")
    for _ in range(messages):
        roll = s.rng.random()
        if roll < 0.2:
            doc.add("ib mình qua sđt ")
            doc.ident("vn_phone", s.phone_written())
        elif roll < 0.35:
            doc.add("ck vào stk ")
            doc.ident("vn_bank_account", s.bank_account())
            doc.add(f" {s.rng.choice(BANKS)} nhé")
        elif roll < 0.45:
            doc.add("số thẻ ")
            doc.ident("payment_card", s.card_written(s.card()))
            doc.add(" hạn 12/28")
        elif roll < 0.55:
            doc.add("hộ chiếu ")
            doc.ident("vn_passport", s.passport())
        elif roll < 0.62:
            doc.add("cmnd cũ ")
            doc.ident("vn_legacy_id", s.legacy_id())
        elif roll < 0.7:
            doc.add("số cũ ")
            doc.ident("vn_phone", s.legacy_mobile())
        elif roll < 0.75:
            doc.add("bàn ")
            doc.ident("vn_phone", s.landline())
        elif roll < 0.85:
            doc.add(f"mã đơn {s.negative()} giá {s.negative()}")
        else:
            doc.add(f"model {s.passport()} còn hàng, tồn kho {s.bank_account()} chiếc")
        doc.add("\n")
    return doc


GENERATORS = (forum_post, csv_dump, json_lines, sql_dump, app_log, chat)


def labelled_corpus(seed: int = 7, documents: int = 60) -> list[LabelledDoc]:
    """A reproducible mix of every document shape."""
    s = Synth(seed)
    return [GENERATORS[i % len(GENERATORS)](s) for i in range(documents)]
