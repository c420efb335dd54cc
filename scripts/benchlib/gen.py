"""Complaints in the shape of ``../shared/data/complaints.jsonl``, as many as a load needs.

Each generated complaint takes one of the 40 samples as its template (so its
type, category, topic, region and expected institution are real routing cases)
and varies what a real stream varies: the reporter (Indonesian names, NIK of the
region, phone, sometimes an e-mail), the kecamatan, the incident date, the
channel, and the text (the sample's text with extra sentences of the kind
reporters write). Anonymous and secret flags keep the sample's value, with a
few more set at random. Deterministic for a given seed.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

FIRST = ("Sri", "Rahmat", "Andi", "Wulan", "Budi", "Siti", "Agus", "Dewi", "Hendra", "Nurul", "Yusuf", "Ratna",
         "Fajar", "Indah", "Bambang", "Lestari", "Rizky", "Ayu", "Dedi", "Fitri", "Joko", "Maya", "Hasan",
         "Kartini", "Ilham", "Rina", "Syahrul", "Novita", "Arif", "Yuliana", "Darmawan", "Nur", "Eko", "Putri",
         "Gusti", "Asmah", "Taufik", "Herlina", "Samsul", "Mariani")
LAST = ("Wahyuningsih", "Hidayat", "Pratama", "Sari", "Santoso", "Rahmawati", "Saputra", "Lestari", "Gunawan",
        "Hasanah", "Kurniawan", "Anggraini", "Setiawan", "Handayani", "Nugroho", "Wijaya", "Siregar", "Lubis",
        "Harahap", "Daeng", "Baharuddin", "Syamsuddin", "Ramadhan", "Fitriani", "Maulana", "Susanti", "Firmansyah",
        "Mahmud", "Aminah", "Husain")
KECAMATAN = {
    "6401": ("Tanah Grogot", "Long Ikis", "Kuaro", "Batu Sopang", "Long Kali", "Pasir Belengkong", "Muara Komam",
             "Batu Engau", "Tanjung Harapan", "Muara Samu", "Muara Komam", "Tanjung Aru"),
    "6409": ("Penajam", "Waru", "Babulu", "Sepaku"),
    "6471": ("Balikpapan Kota", "Balikpapan Selatan", "Balikpapan Utara", "Balikpapan Timur", "Balikpapan Barat",
             "Balikpapan Tengah"),
    "64": ("Samarinda Ulu", "Sungai Kunjang", "Tenggarong", "Bontang Utara"),
}
EXTRA = (
    "Kejadian ini sudah berlangsung sekitar {n} minggu dan belum ada tanggapan dari petugas.",
    "Kami sudah melapor ke kantor desa pada tanggal {d} {m} tetapi belum ada tindak lanjut.",
    "Warga di RT {rt} juga mengalami hal yang sama, kurang lebih {k} keluarga terdampak.",
    "Mohon segera ditindaklanjuti karena sangat mengganggu kegiatan sehari-hari warga.",
    "Kami berharap pemerintah dapat memberikan penjelasan yang jelas kepada masyarakat.",
    "Foto kondisi di lapangan sudah kami simpan dan siap kami kirimkan bila diperlukan.",
    "Sebelumnya masalah serupa pernah terjadi pada tahun {y} dan sempat diperbaiki.",
    "Lokasinya dekat dengan sekolah dasar dan pasar, sehingga banyak warga yang melintas.",
    "Terima kasih atas perhatian dan tindak lanjut dari instansi terkait.",
    "Kami sudah menghubungi nomor pengaduan yang tersedia, namun tidak ada jawaban.",
)
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember")
CHANNELS = ("web", "sms", "whatsapp", "lapor-app", "walk-in", "email", "phone")
SAMPLE_ONLY = ("filed_at", "expected_institution", "note")


def _reporter(rng: random.Random, region: str) -> dict:
    female = rng.random() < 0.5
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    day = rng.randint(1, 28) + (40 if female else 0)
    nik = f"{region[:4].ljust(4, '0')}{rng.randint(1, 12):02d}{day:02d}{rng.randint(1, 12):02d}" \
          f"{rng.randint(60, 99):02d}{rng.randint(1, 9999):04d}"
    out = {"name": name, "nik": nik, "phone": f"+62 8{rng.randint(11, 59)} {rng.randint(1000, 9999)} "
                                              f"{rng.randint(1000, 9999)}"}
    if rng.random() < 0.4:
        out["email"] = f"{name.lower().replace(' ', '.')}{rng.randint(1, 99)}@example.id"
    return out


def _text(rng: random.Random, body: str) -> str:
    extra = []
    for tpl in rng.sample(EXTRA, rng.randint(1, 3)):
        extra.append(tpl.format(n=rng.randint(1, 8), d=rng.randint(1, 28), m=rng.choice(MONTHS),
                                rt=f"{rng.randint(1, 30):02d}", k=rng.randint(5, 120), y=rng.randint(2019, 2025)))
    return body + " " + " ".join(extra)


def generate(samples: list[dict], n: int, seed: int = 7, filed_at: str | None = None,
             prefix: str = "G") -> Iterator[dict]:
    """``n`` complaints shaped like the samples (keys ``filed_at`` and ``expected_institution`` included)."""
    rng = random.Random(seed)
    for i in range(n):
        s = samples[i % len(samples)] if i < len(samples) else rng.choice(samples)
        region = s["region"]
        kec = rng.choice(KECAMATAN.get(region, (s.get("kecamatan") or "Kota",)))
        c = {k: v for k, v in s.items() if k not in ("note",)}
        c.update(ref=f"{prefix}{seed:02d}-{i + 1:07d}", kecamatan=kec, channel=rng.choice(CHANNELS),
                 body=_text(rng, s["body"]), reporter=_reporter(rng, region),
                 incident_date=f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}",
                 anonim=bool(s.get("anonim")) or rng.random() < 0.05,
                 rahasia=bool(s.get("rahasia")) or rng.random() < 0.02)
        if rng.random() < 0.3:
            c["title"] = f"{s['title']} ({kec})"
        if filed_at is not None:
            c["filed_at"] = filed_at
        yield c


def api_body(c: dict) -> dict:
    """What a channel POSTs: the complaint without the test-only keys."""
    return {k: v for k, v in c.items() if k not in SAMPLE_ONLY}
