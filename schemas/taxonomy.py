"""The category taxonomy a node accepts.

It is the national taxonomy, not only the categories some institution of the
sample federation handles: a complaint in a category no institution holds
(``pertanian`` in the sample) must still be filed and wait for manual
disposition ("No Wrong Door"), while a misspelt or invented category is
rejected at intake.
"""
CATEGORIES = {
    "pendidikan": "Pendidikan",
    "kesehatan": "Kesehatan",
    "infrastruktur": "Infrastruktur dan Pekerjaan Umum",
    "kependudukan": "Administrasi Kependudukan",
    "perhubungan": "Perhubungan",
    "lingkungan": "Lingkungan Hidup",
    "sosial": "Sosial dan Bantuan Sosial",
    "air_bersih": "Air Bersih",
    "ketertiban": "Ketertiban Umum",
    "pajak": "Pajak dan Retribusi Daerah",
    "perizinan": "Perizinan",
    "energi": "Energi dan Kelistrikan",
    "informasi": "Permintaan Informasi Publik",
    "kominfo": "Komunikasi dan Informatika",
    "pertanian": "Pertanian dan Peternakan",
    "ketenagakerjaan": "Ketenagakerjaan",
    "perumahan": "Perumahan Rakyat",
    "pariwisata": "Pariwisata dan Kebudayaan",
    "umkm": "Koperasi dan UMKM",
    "hukum": "Hukum dan HAM",
    "agama": "Agama",
    "lainnya": "Lainnya",
}
