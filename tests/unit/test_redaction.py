"""Unit tests for node.redaction: masking personal data in complaint text."""
from __future__ import annotations

import json
import re

import pytest

from node.redaction import Finding, Redaction, redact
from node.samples import sample_dir

SAMPLES = sample_dir() / "complaints.jsonl"

SRI = {
    "name": "Sri Wahyuningsih",
    "nik": "6401044511820001",
    "phone": "+62 812 0000 0101",
    "email": "sri.w@example.id",
}
RAHMAT = {"name": "Rahmat Hidayat", "nik": "6401061203790002", "phone": "+62 812 0000 0102"}
ERNA = {"name": "Ernawati", "nik": "6401015107750039", "phone": "+62 812 0000 0139"}

NIK = "[NIK disamarkan]"
TEL = "[nomor telepon disamarkan]"
MAIL = "[email disamarkan]"
NAMA = "[nama disamarkan]"
ALAMAT = "[alamat disamarkan]"
WIDE = {"name": "Wati", "nik": "\uff16\uff14\uff10\uff11044511820001", "phone": "+62\u00a0813\u00a04444\u00a05555",
        "address": "Jl. Cempaka No. 12 RT 04, Tanah Grogot"}


def load_samples() -> list[dict]:
    return [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]


# (id, text, reporter, expected text, expected kinds in order)
CASES = [
    # --- the reporter's own data, in the spellings people actually type ---
    ("own-nik-plain", "Saya sudah merekam KTP dengan NIK 6401044511820001 pada bulan Juli.", SRI,
     f"Saya sudah merekam KTP dengan NIK {NIK} pada bulan Juli.", ["reporter_nik"]),
    ("own-nik-spaced", "NIK saya 6401 0445 1182 0001, mohon dicek.", SRI,
     f"NIK saya {NIK}, mohon dicek.", ["reporter_nik"]),
    ("own-nik-dotted", "Nomor induk kependudukan: 64.01.04.451182.0001.", SRI,
     f"Nomor induk kependudukan: {NIK}.", ["reporter_nik"]),
    ("own-phone-0", "Silakan hubungi saya di 0812-0000-0101 pada jam kerja.", SRI,
     f"Silakan hubungi saya di {TEL} pada jam kerja.", ["reporter_phone"]),
    ("own-phone-62", "WA saya 6281200000101 aktif setiap hari.", SRI,
     f"WA saya {TEL} aktif setiap hari.", ["reporter_phone"]),
    ("own-phone-plus62", "Nomor HP: +62 812 0000 0101.", SRI, f"Nomor HP: {TEL}.", ["reporter_phone"]),
    ("own-phone-parens", "Telepon (0812) 0000 0101 kalau ada petugas yang datang.", SRI,
     f"Telepon {TEL} kalau ada petugas yang datang.", ["reporter_phone"]),
    ("own-phone-dots", "Kontak 0812.0000.0101 (WhatsApp).", SRI, f"Kontak {TEL} (WhatsApp).", ["reporter_phone"]),
    ("own-phone-no-prefix", "nomor saya 812 0000 0101", SRI, f"nomor saya {TEL}", ["reporter_phone"]),
    ("own-email-case", "Balasan mohon dikirim ke Sri.W@Example.ID saja.", SRI,
     f"Balasan mohon dikirim ke {MAIL} saja.", ["email"]),
    ("own-name", "Saya, Sri Wahyuningsih, orang tua murid kelas VII.", SRI,
     f"Saya, {NAMA}, orang tua murid kelas VII.", ["reporter_name"]),
    ("own-name-case-and-spacing", "ttd.\nSRI   wahyuningsih", SRI, f"ttd.\n{NAMA}", ["reporter_name"]),
    ("own-name-single-word", "Saya Ernawati, penerima bantuan tunai di desa.", ERNA,
     f"Saya {NAMA}, penerima bantuan tunai di desa.", ["reporter_name"]),
    ("name-part-only-kept", "Bu Sri guru kelas sudah menjelaskan.", SRI,
     "Bu Sri guru kelas sudah menjelaskan.", []),
    ("name-inside-word-kept", "Rahmat Hidayatullah adalah nama kepala sekolah.", RAHMAT,
     "Rahmat Hidayatullah adalah nama kepala sekolah.", []),
    ("all-together",
     "Saya Rahmat Hidayat, NIK 6401061203790002, HP 0812 0000 0102. Listrik padam sejak pukul 19.00.",
     RAHMAT, f"Saya {NAMA}, NIK {NIK}, HP {TEL}. Listrik padam sejak pukul 19.00.",
     ["reporter_name", "reporter_nik", "reporter_phone"]),
    # --- other people's data, by shape ---
    ("other-nik", "Kepala desa dengan NIK 6401041111710010 menahan bantuan.", None,
     f"Kepala desa dengan NIK {NIK} menahan bantuan.", ["nik"]),
    ("other-nik-grouped", "KK nomor 6401-0411-1171-0010 belum diperbarui.", None,
     f"KK nomor {NIK} belum diperbarui.", ["nik"]),
    ("other-phone-0", "Oknum itu bisa dihubungi di 0813-4567-8910.", None,
     f"Oknum itu bisa dihubungi di {TEL}.", ["phone"]),
    ("other-phone-plus62", "Pendamping PKH (+62 857 1234 5678) meminta uang.", None,
     f"Pendamping PKH ({TEL}) meminta uang.", ["phone"]),
    ("other-phone-62", "Nomor 6285212345678 mengirim pesan penipuan.", None,
     f"Nomor {TEL} mengirim pesan penipuan.", ["phone"]),
    ("other-email", "Saya sudah mengirim surel ke admin.desa@gmail.com tanpa balasan.", None,
     f"Saya sudah mengirim surel ke {MAIL} tanpa balasan.", ["email"]),
    ("phone-and-nik-adjacent", "Data: 081345678910 6401041111710010", None, f"Data: {TEL} {NIK}", ["phone", "nik"]),
    ("other-data-with-reporter", "Nomor petugas 0821-1111-2222, nomor saya 0812 0000 0101.", SRI,
     f"Nomor petugas {TEL}, nomor saya {TEL}.", ["phone", "reporter_phone"]),
    # --- ordinary numbers that must survive ---
    ("money", "Kami diminta membayar Rp750.000 untuk seragam dan Rp 1.250.000 untuk buku.", None,
     "Kami diminta membayar Rp750.000 untuk seragam dan Rp 1.250.000 untuk buku.", []),
    ("big-money", "Anggaran proyek Rp1.500.000.000.000.000 tidak masuk akal.", None,
     "Anggaran proyek Rp1.500.000.000.000.000 tidak masuk akal.", []),
    ("money-16-digits-after-rp", "Nilai kontrak Rp1234567890123456 dipertanyakan.", None,
     "Nilai kontrak Rp1234567890123456 dipertanyakan.", []),
    ("times", "Padam setiap malam antara pukul 19.00 sampai 22.00 WITA.", None,
     "Padam setiap malam antara pukul 19.00 sampai 22.00 WITA.", []),
    ("dates", "Kejadian pada 06-10-2026 dan berulang 14/10/2026.", None,
     "Kejadian pada 06-10-2026 dan berulang 14/10/2026.", []),
    ("distance-rt-rw-year", "Jalan rusak sepanjang 2 km di RT 003/RW 005 sejak tahun 2024, 50 orang per hari.", None,
     "Jalan rusak sepanjang 2 km di RT 003/RW 005 sejak tahun 2024, 50 orang per hari.", []),
    ("year-range", "Data banjir untuk tahun 2026-2027 dan anggaran 2025.", None,
     "Data banjir untuk tahun 2026-2027 dan anggaran 2025.", []),
    ("not-a-mobile", "Kantor desa 0543 21234 buka pagi.", None, "Kantor desa 0543 21234 buka pagi.", []),
    ("too-long-for-a-phone", "Kode 62-812-3456-7890-1234 tertera di kuitansi.", None,
     "Kode 62-812-3456-7890-1234 tertera di kuitansi.", []),
    ("too-many-digits-for-a-phone", "Nomor meter 081234567890123 tercatat.", None,
     "Nomor meter 081234567890123 tercatat.", []),
    ("seventeen-digits", "Nomor resi 64010444511820001 belum sampai.", None,
     "Nomor resi 64010444511820001 belum sampai.", []),
    ("other-person-name-kept", "Pak Joko Susilo sudah menandatangani.", SRI,
     "Pak Joko Susilo sudah menandatangani.", []),
    # --- digits, spaces and dashes of other scripts and widths (before, none of these was masked) ---
    ("own-phone-nbsp-and-en-dash", "WA saya +62\u00a0813\u00a04444\u00a05555 atau 0813\u20134444\u20135555.", WIDE,
     f"WA saya {TEL} atau {TEL}.", ["reporter_phone", "reporter_phone"]),
    ("own-nik-full-width", "NIK saya \uff16\uff14\uff10\uff11\uff10\uff14\uff14\uff15\uff11\uff11\uff18"
     "\uff12\uff10\uff10\uff10\uff11 ya", SRI, f"NIK saya {NIK} ya", ["reporter_nik"]),
    ("own-nik-stored-full-width", "NIK 6401044511820001", WIDE, f"NIK {NIK}", ["reporter_nik"]),
    ("other-phone-arabic-indic", "hubungi \u0660\u0668\u0661\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
     "\u0661\u0660", None, f"hubungi {TEL}", ["phone"]),
    ("other-nik-one-wide-digit", "NIK 640104111171001\uff10 ditahan", None, f"NIK {NIK} ditahan", ["nik"]),
    # --- other people's phones in the other ways people write them ---
    ("other-phone-dots", "Hubungi 0812.9999.8888 saja.", None, f"Hubungi {TEL} saja.", ["phone"]),
    ("other-phone-slashes", "Nomor 0812/9999/8888 aktif.", None, f"Nomor {TEL} aktif.", ["phone"]),
    ("other-phone-bracketed", "Telp (0812) 9999 8888 ya.", None, f"Telp {TEL} ya.", ["phone"]),
    ("dotted-code-kept", "Kode 0812.9999.8888.123 di kuitansi.", None, "Kode 0812.9999.8888.123 di kuitansi.", []),
    # --- the reporter's address: whole, or its numbered part ---
    ("own-address", "Rumah saya di jl. cempaka no. 12 rt 04, tanah grogot, banjir.", WIDE,
     f"Rumah saya di {ALAMAT}, banjir.", ["reporter_address"]),
    ("own-address-part", "Datang saja ke Jl. Cempaka No. 12  RT 04 sore hari.", WIDE,
     f"Datang saja ke {ALAMAT} sore hari.", ["reporter_address"]),
    ("own-town-kept", "Banjir di Tanah Grogot sejak Senin.", WIDE, "Banjir di Tanah Grogot sejak Senin.", []),
    ("own-address-without-its-dots", "Ke Jl Cempaka No 12 RT 04 saja.", WIDE, f"Ke {ALAMAT} saja.",
     ["reporter_address"]),
    ("own-address-squeezed", "Ke Jl.Cempaka No.12 RT.04 saja.", WIDE, f"Ke {ALAMAT} saja.", ["reporter_address"]),
    # --- separators a second verification pass found (before, each was published as typed) ---
    ("own-phone-spaced-dashes", "Hubungi saya 0813 - 4444 - 5555.", WIDE, f"Hubungi saya {TEL}.",
     ["reporter_phone"]),
    ("own-phone-zero-width", "WA 0813\u200b4444\u200b5555", WIDE, f"WA {TEL}", ["reporter_phone"]),
    ("own-phone-soft-hyphen", "WA 0813\u00ad4444\u00ad5555", WIDE, f"WA {TEL}", ["reporter_phone"]),
    ("own-phone-fraction-slash", "WA 0813\u20444444\u20445555", WIDE, f"WA {TEL}", ["reporter_phone"]),
    ("other-phone-62-bracketed", "WA +62(812)99998888 ya", None, f"WA {TEL} ya", ["phone"]),
    ("other-phone-spaced-dashes", "Oknum: 0812 - 9999 - 8888.", None, f"Oknum: {TEL}.", ["phone"]),
    ("money-range-kept", "Biaya Rp 1.250.000 - 2.500.000 per bulan.", None,
     "Biaya Rp 1.250.000 - 2.500.000 per bulan.", []),
]


@pytest.mark.parametrize(("text", "reporter", "expected", "kinds"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_redaction_table(text, reporter, expected, kinds):
    result = redact(text, reporter=reporter)
    assert result.text == expected
    assert [f.kind for f in result.findings] == kinds


@pytest.mark.parametrize(("text", "reporter"), [c[1:3] for c in CASES], ids=[c[0] for c in CASES])
def test_findings_point_into_the_original_text(text, reporter):
    result = redact(text, reporter=reporter)
    starts = [f.start for f in result.findings]
    assert starts == sorted(starts)
    rebuilt, cursor = [], 0
    for f in result.findings:
        assert 0 <= f.start < f.end <= len(text) and f.start >= cursor
        rebuilt += [text[cursor:f.start], "\0"]
        cursor = f.end
    rebuilt.append(text[cursor:])
    # replacing every finding's span by its mask reproduces the masked text
    masks = iter(re.findall(r"\[[^\]]+ disamarkan\]", result.text))
    assert "".join(next(masks) if part == "\0" else part for part in rebuilt) == result.text


def test_result_is_frozen_value():
    result = redact("NIK 6401041111710010", reporter=None)
    assert result == Redaction(f"NIK {NIK}", (Finding("nik", 4, 20),))
    assert result.changed
    with pytest.raises(AttributeError):
        result.text = "x"  # type: ignore[misc]


def test_reporter_with_missing_or_empty_fields():
    text = "Saya warga Long Kali, nomor 0812 0000 0101."
    assert redact(text, reporter={}).text == f"Saya warga Long Kali, nomor {TEL}."
    assert redact(text, reporter={"name": "", "nik": "", "phone": ""}).text == f"Saya warga Long Kali, nomor {TEL}."
    assert redact("", reporter=SRI) == Redaction("", ())


def test_idempotent():
    once = redact("Saya Sri Wahyuningsih, HP 0812-0000-0101, NIK 6401044511820001.", reporter=SRI)
    assert redact(once.text, reporter=SRI) == Redaction(once.text, ())


def _reporter_digit_sequences(reporter: dict) -> list[str]:
    seqs = [re.sub(r"\D", "", reporter["nik"])]
    phone = re.sub(r"\D", "", reporter["phone"])
    seqs.append(phone[2:] if phone.startswith("62") else phone.lstrip("0"))  # national number
    return seqs


def _variants(reporter: dict) -> list[str]:
    """The reporter's own data written into a body the ways reporters write it."""
    nik = reporter["nik"]
    national = re.sub(r"\D", "", reporter["phone"])[2:]
    spaced_nik = " ".join(nik[i:i + 4] for i in range(0, 16, 4))
    return [
        f" Saya {reporter['name']}, NIK {nik}, HP 0{national}.",
        f" NIK: {spaced_nik}. Hubungi {reporter['phone']} atau 0{national[:3]}-{national[3:7]}-{national[7:]}.",
        f" Nomor WA 62{national}, KTP {nik[:6]}.{nik[6:12]}.{nik[12:]}",
    ]


def test_all_sample_bodies():
    """Every sample body: unchanged as is; with the reporter's data woven in,
    no digit sequence of the reporter's NIK or phone survives."""
    samples = load_samples()
    assert len(samples) == 40
    for s in samples:
        body, reporter = s["body"], s["reporter"]
        plain = redact(body, reporter=reporter)
        assert plain.text == body, s["ref"]
        assert plain.findings == (), s["ref"]
        for extra in _variants(reporter):
            out = redact(body + extra, reporter=reporter).text
            digits_left = re.sub(r"\D", "", out)
            for seq in _reporter_digit_sequences(reporter):
                assert seq not in digits_left, (s["ref"], extra, out)
            assert out.startswith(body), s["ref"]
            assert reporter["name"].lower() not in out.lower(), s["ref"]
            if reporter.get("email"):
                assert reporter["email"] not in redact(body + " " + reporter["email"], reporter=reporter).text


def test_sample_titles_unchanged():
    for s in load_samples():
        assert redact(s["title"], reporter=s["reporter"]).text == s["title"], s["ref"]


@pytest.mark.parametrize("text", ["Rp750.000, hubungi 0812-3456-7890", "tanpa angka", "", "NIK: 6401 0768 0364 2274",
                                  "nomor ٠١٢ dan 345 — lihat 6.7", "tel. ＋62 812 (lebar penuh) 99"])
def test_digits_match_the_regular_expression_on_any_text(text):
    from node.redaction import _digits
    assert _digits(text) == re.sub(r"[^0-9]+", "", text)
