"""The eMAG platforms the sandbox can stand in for: currency, language and VAT rates of each.

VAT rates (checked 2026-12): Romania 21 % standard and one reduced rate of 11 % since 2025-08-01 (Law 141/2025
merged the 5 % and 9 % rates; a transitional 9 % for some housing until 2026-07-31 is left out); Bulgaria 20 % and
9 % (hotel accommodation); Hungary 27 %, 18 % and 5 %. The 0 % id stands for exempt and intra-EU supplies. The
vat_id numbers are the sandbox's own: eMAG's real ids per platform are unverified.

Currency: Bulgaria has used the euro since 2026-01-01 (Council decision of 2025-07-08, 1.95583 BGN per EUR), so the
`bg` platform lists prices in EUR; `currency="BGN"` (a switch) gives the lev of older data. What eMAG's own API
reports for .bg after the changeover is unverified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PlatformCode = Literal["ro", "bg", "hu"]
PLATFORM_CODES: tuple[PlatformCode, ...] = ("ro", "bg", "hu")


@dataclass(frozen=True)
class Platform:
    code: PlatformCode
    currency: str
    language: str
    vat: tuple[tuple[int, float], ...]  # (vat_id, rate); the first is the default (standard) rate

    def vat_rates(self) -> list[dict[str, object]]:
        """What vat/read answers."""
        default = self.vat[0][0]
        return [{"vat_id": i, "vat_rate": rate, "is_default": int(i == default)} for i, rate in self.vat]

    def vat_id(self, drawn: int) -> int:
        """An offer's vat_id: `drawn` is 1 (standard), 2 or 3 (reduced); a platform with one reduced rate uses 2."""
        known = {i for i, _ in self.vat}
        return drawn if drawn in known else 2

    def standard_rate(self) -> float:
        return self.vat[0][1]


PLATFORMS: dict[PlatformCode, Platform] = {
    "ro": Platform("ro", "RON", "ro_RO", ((1, 0.21), (2, 0.11), (4, 0.0))),
    "bg": Platform("bg", "EUR", "bg_BG", ((1, 0.20), (2, 0.09), (4, 0.0))),
    "hu": Platform("hu", "HUF", "hu_HU", ((1, 0.27), (2, 0.18), (3, 0.05), (4, 0.0))),
}


def platform(code: str) -> Platform:
    try:
        return PLATFORMS[code]  # type: ignore[index]
    except KeyError:
        raise ValueError(f"platform must be one of {PLATFORM_CODES}, not {code!r}") from None
