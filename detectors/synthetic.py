"""Synthetic Vietnamese identifiers and hard negatives, for tests, samples and benchmarks.

Every identifier in this repository is generated here (never a real person's data). Valid
values follow ../shared/reference/vn-identifiers.md; the negatives are the look-alikes the
reference warns about. Pure and seeded: the same seed gives the same corpus.
"""

from __future__ import annotations

import random
import string

from detectors.validators import (
    CITIZEN_ID_PROVINCES,
    LEGACY_MOBILE_PREFIXES,
    MOBILE_PREFIXES,
    luhn_ok,
    tax_code_check_digit,
)

PROVINCES = sorted(CITIZEN_ID_PROVINCES)
MOBILES = sorted(MOBILE_PREFIXES)
NAPAS_BANKS = ["970436", "970418", "970415", "970405", "970407", "970422", "970416", "970432"]
BANKS = ["Vietcombank", "BIDV", "VietinBank", "Agribank", "Techcombank", "MB Bank", "ACB",
         "VPBank", "Sacombank", "TPBank"]
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
          "Đỗ", "Hồ", "Ngô", "Dương", "Lý"]
MIDDLE = ["Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Gia", "Thu"]
GIVEN = ["An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hùng", "Khoa", "Lan",
         "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quân", "Sơn", "Tâm", "Thảo", "Trang",
         "Tuấn", "Vy", "Yến"]
BHYT_CODES = ["DN", "HX", "CH", "NN", "TK", "HC", "XK", "CA", "HT", "TB", "GD", "HS", "SV", "TE",
              "CN", "HN", "DT", "BT", "XB", "TN", "CC", "CK", "XN", "MS"]
MAIL_DOMAINS = ["gmail.com", "yahoo.com.vn", "outlook.com", "fpt.vn", "vnpt.vn", "congty.com.vn"]


class Synth:
    """Seeded generator of valid identifiers (and their look-alikes)."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)

    def digits(self, n: int) -> str:
        """N random digits."""
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def name(self) -> str:
        """A Vietnamese-looking full name (generated, belongs to nobody)."""
        r = self.rng
        return f"{r.choice(FAMILY)} {r.choice(MIDDLE)} {r.choice(GIVEN)}"

    def citizen_id(self) -> str:
        """A structurally valid 12-digit CCCD."""
        r = self.rng
        year = r.randint(1940, 2019)
        century = (year - 1900) // 100
        gender = r.randint(0, 1)
        tail = self.digits(6)
        if tail == "000000":
            tail = "000001"
        return f"{r.choice(PROVINCES)}{2 * century + gender}{year % 100:02d}{tail}"

    def legacy_id(self) -> str:
        """A 9-digit CMND with a plausible province prefix."""
        return f"{self.rng.randint(1, 38):02d}{self.digits(7)}"

    def mobile(self) -> str:
        """A 10-digit national-format mobile number."""
        return "0" + self.rng.choice(MOBILES) + self.digits(7)

    def legacy_mobile(self) -> str:
        """A pre-2019 11-digit mobile (01xx)."""
        return "0" + self.rng.choice(sorted(LEGACY_MOBILE_PREFIXES)) + self.digits(7)

    def landline(self) -> str:
        """An 11-digit landline: Hà Nội 024, TP.HCM 028, or 02xx elsewhere."""
        area = self.rng.choice(["24", "28", "236", "251", "292", "203", "274"])
        return "0" + area + self.digits(10 - len(area))

    def phone_written(self, number: str | None = None) -> str:
        """A mobile in one of the written forms the reference lists."""
        n = number or self.mobile()
        forms = [
            n,
            f"{n[:4]}.{n[4:7]}.{n[7:]}",
            f"{n[:4]} {n[4:7]} {n[7:]}",
            f"{n[:3]}-{n[3:6]}-{n[6:]}",
            f"+84 {n[1:4]} {n[4:7]} {n[7:]}",
            f"(+84) {n[1:]}",
            f"84{n[1:]}",
        ]
        return self.rng.choice(forms)

    def bank_account(self) -> str:
        """An account number of a typical length (no checksum exists)."""
        n = self.rng.choice([10, 12, 13, 13, 14, 14, 16])
        value = self.digits(n)
        return value if len(set(value)) > 1 else "1" + value[1:]

    def card(self, napas: bool | None = None) -> str:
        """A Luhn-valid card: NAPAS 9704 (16/19 digits) or Visa/Mastercard."""
        r = self.rng
        napas = r.random() < 0.5 if napas is None else napas
        if napas:
            prefix, length = r.choice(NAPAS_BANKS), r.choice([16, 16, 19])
        else:
            prefix, length = r.choice(["4", "51", "52", "53", "54", "55"]), 16
        body = prefix + self.digits(length - len(prefix) - 1)
        for check in string.digits:
            if luhn_ok(body + check):
                return body + check
        raise AssertionError("unreachable: one check digit always satisfies Luhn")

    def card_written(self, card: str) -> str:
        """Cards are often written in groups of four."""
        if len(card) == 16 and self.rng.random() < 0.5:
            sep = self.rng.choice([" ", "-"])
            return sep.join(card[i:i + 4] for i in range(0, 16, 4))
        return card

    def tax_code(self, branch: bool = False) -> str:
        """A 10-digit MST with a correct check digit (optionally a -NNN branch)."""
        while True:
            province = self.rng.choice(["01", "03", "02", "04", "08", "27", "36"])
            first9 = province + self.digits(7)
            check = tax_code_check_digit(first9)
            if check is not None and first9[2:] != "0000000":
                code = first9 + str(check)
                return f"{code}-{self.rng.randint(1, 999):03d}" if branch else code

    def passport(self) -> str:
        """One letter and 7 digits."""
        return self.rng.choice("BCN") + self.digits(7)

    def health_insurance(self) -> str:
        """A 15-character BHYT number."""
        r = self.rng
        return f"{r.choice(BHYT_CODES)}{r.randint(1, 5)}{r.choice(PROVINCES)[1:]}{self.digits(10)}"

    def email(self, name: str | None = None) -> str:
        """A mailbox derived from a generated name."""
        base = (name or self.name()).split()[-1].lower()
        base = base.translate(str.maketrans("àáảãạăắằẳẵặâấầẩẫậđèéẻẽẹêếềểễệìíỉĩịòóỏõọôốồổỗộơớờởỡợ"
                                            "ùúủũụưứừửữựỳýỷỹỵ",
                                            "aaaaaaaaaaaaaaaaadeeeeeeeeeeeiiiiiooooooooooooooooo"
                                            "uuuuuuuuuuuyyyyy"))
        return f"{base}.{self.digits(4)}@{self.rng.choice(MAIL_DOMAINS)}"

    # -- hard negatives -----------------------------------------------------------------

    def negative(self) -> str:
        """A look-alike that must not be reported as any identifier."""
        r = self.rng
        kind = r.randrange(14)
        if kind == 0:
            return str(r.randint(1_500_000_000, 1_790_000_000))  # epoch seconds
        if kind == 1:
            return str(r.randint(1_500_000_000_000, 1_790_000_000_000))  # epoch millis
        if kind == 2:
            return f"DH{self.digits(10)}"  # order id glued to letters
        if kind == 3:
            return self.digits(15)  # IMEI-like
        if kind == 4:
            return f"{r.randint(1, 999)}.{self.digits(3)}.{self.digits(3)} VND"  # price
        if kind == 5:
            return f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(1950, 2025)}"
        if kind == 6:
            return "-".join(self.digits(n) for n in (8, 4, 4, 4, 12))  # UUID-ish digits
        if kind == 7:
            return "999" + self.digits(9)  # invalid province code
        if kind == 8:
            return "01" + self.digits(8)  # invalid mobile prefix (10 digits, 01x)
        if kind == 9:
            card = self.card(napas=False)
            return card[:-1] + str((int(card[-1]) + 1) % 10)  # Luhn fails
        if kind == 10:
            code = self.tax_code()
            while code[1:3] in MOBILE_PREFIXES:  # keep it from being a valid phone number
                code = self.tax_code()
            return code[:-1] + str((int(code[-1]) + 1) % 10)  # wrong check digit
        if kind == 11:
            return ".".join(str(r.randint(1, 254)) for _ in range(4))  # IPv4
        if kind == 12:
            return self.digits(r.randint(20, 30))  # long digit run
        return f"INV-{r.randint(2020, 2026)}-{self.digits(8)}"  # invoice number
