"""Rebuild the shipped language-ID n-gram model from ../shared/data and print held-out scores.

Usage: python scripts/train_langid.py [--out src/elshi/nlp/models/langid_ngrams.npz] [--eval-only]

Data path: ELSHI_SHARED_DATA or ../shared/data. Deterministic (fixed seeds, hash splits).
Only train and validation files are read; KazNERD, RuSentNE validation and the twarc/RSS
samples are never trained on and serve as held-out evaluation sets.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import random
import re
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elshi.nlp import language as lid  # noqa: E402
from elshi.nlp.folding import KK_LATIN_2021  # noqa: E402

SEED = 20240601
TOP_PER_CLASS = 9000
ALPHA = 0.3
HELDOUT_PERCENT = 15

# --------------------------------------------------------------------------------------------
# Seed sentences written by the project for languages with no data in ../shared/data.
# They teach the n-gram model the look of these distractor languages; they are not a benchmark.
# --------------------------------------------------------------------------------------------
SEED_TR = """
Bugün hava çok güzel, parka yürüyüşe gittik.
Yarın sabah erkenden İstanbul'a uçacağım.
Bu uygulama gerçekten çok kullanışlı, herkese tavsiye ederim.
Türkiye ile Kazakistan arasındaki ticaret geçen yıl arttı.
Dışişleri Bakanı bugün Ankara'da bir basın toplantısı düzenledi.
Çocuklar okuldan eve geç döndü.
Akşam yemeğinde ne yiyeceğiz?
Bu kitabı okumanı kesinlikle öneririm.
Seçim sonuçları yarın açıklanacak.
Hükümet yeni ekonomik önlemleri duyurdu.
Maalesef toplantıya katılamayacağım, çok özür dilerim.
Telefonumun şarjı bitti, seni sonra ararım.
Reklamlar çok fazla, uygulama sürekli donuyor.
Cumhurbaşkanı resmi ziyaret için Astana'ya gitti.
Öğrenciler sınavlara hazırlanıyor.
Kahve mi içersin, çay mı?
Fiyatlar her geçen gün yükseliyor.
Büyükelçilik vize başvurularını pazartesi günü kabul ediyor.
Bu haberi duyunca çok şaşırdım.
Deprem bölgesine yardım malzemeleri gönderildi.
Güzel bir hafta sonu geçirdik, teşekkürler.
Uygulamayı güncelledikten sonra açılmıyor.
Türk dili dünyada en çok konuşulan dillerden biridir.
Annem bize köfte yaptı.
Şehirde trafik çok yoğundu.
Maçı kazanan takım kupayı aldı.
Bu konuda ne düşünüyorsunuz?
Hizmet kalitesi çok kötü, bir daha gelmem.
Havalimanında uzun bir kuyruk vardı.
Bakanlık yeni bir açıklama yaptı.
Kardeşim üniversiteyi bitirdi ve iş arıyor.
Ülkemizin geleceği gençlerin elinde.
İki ülke arasında işbirliği anlaşması imzalandı.
Sabahları koşmayı seviyorum.
Film çok sıkıcıydı, yarısında çıktık.
Kitapçıda yeni romanlar var mı?
Yağmur yüzünden maç ertelendi.
Vatandaşlarımızın güvenliği önceliğimizdir.
Lütfen kapıyı kapatır mısın?
Bu şarkıyı dinleyince aklıma çocukluğum geliyor.
Toplantı saat üçte başlayacak.
Ekonomi uzmanları enflasyonun düşeceğini söylüyor.
Çok teşekkür ederim, harika bir iş çıkardınız.
Kargo hâlâ gelmedi, ne zaman gelecek?
Yeni yıl kutlamaları için hazırlıklar sürüyor.
Bu ürün fiyatına göre oldukça kaliteli.
Büyükşehir belediyesi yolları onarıyor.
Doğal gaz fiyatları yine arttı.
Aramızda hiçbir sorun yok.
Geçen yaz Antalya'da tatil yaptık.
Ben de seninle gelmek istiyorum.
Konsolosluk randevusu almak çok zor.
Milli takım dünya kupasına katılmaya hak kazandı.
Öğretmenimiz bize ödev verdi.
Uygulama güzel ama çok yavaş çalışıyor.
Birlikte çalışmaktan mutluluk duyuyoruz.
Bugun hava cok guzel ama biraz soguk.
Tesekkur ederim, cok guzel olmus.
Bu uygulamayi herkese tavsiye ederim, cok begendim.
Neden boyle yapiyorsun anlamiyorum.
"""

SEED_UZ = """
Bugun havo juda yaxshi, biz bog'ga sayr qilgani bordik.
Ertaga ertalab Toshkentga uchaman.
Bu ilova haqiqatan ham juda qulay, hammaga tavsiya qilaman.
O'zbekiston va Qozog'iston o'rtasidagi savdo o'tgan yili o'sdi.
Tashqi ishlar vaziri bugun matbuot anjumani o'tkazdi.
Bolalar maktabdan uyga kech qaytishdi.
Kechki ovqatga nima yeymiz?
Bu kitobni o'qishingizni albatta maslahat beraman.
Saylov natijalari ertaga e'lon qilinadi.
Hukumat yangi iqtisodiy choralarni e'lon qildi.
Afsuski, yig'ilishga qatnasha olmayman, uzr so'rayman.
Telefonimning quvvati tugadi, keyinroq qo'ng'iroq qilaman.
Reklamalar juda ko'p, ilova doim qotib qoladi.
Prezident rasmiy tashrif bilan Ostonaga bordi.
Talabalar imtihonlarga tayyorlanmoqda.
Qahva ichasizmi yoki choymi?
Narxlar kundan kunga oshib bormoqda.
Elchixona viza arizalarini dushanba kuni qabul qiladi.
Bu xabarni eshitib juda hayron bo'ldim.
Zilzila hududiga yordam yuborildi.
Yaxshi dam olish kunlarini o'tkazdik, rahmat.
Ilovani yangilaganimdan keyin ochilmayapti.
O'zbek tili turkiy tillar oilasiga kiradi.
Onam bizga palov pishirdi.
Shaharda tirbandlik juda kuchli edi.
O'yinda g'alaba qozongan jamoa kubokni oldi.
Bu haqda siz nima deb o'ylaysiz?
Xizmat sifati juda yomon, boshqa kelmayman.
Aeroportda uzun navbat bor edi.
Vazirlik yangi bayonot berdi.
Ukam universitetni tugatdi va ish qidirmoqda.
Mamlakatimiz kelajagi yoshlar qo'lida.
Ikki davlat o'rtasida hamkorlik shartnomasi imzolandi.
Ertalab yugurishni yaxshi ko'raman.
Film juda zerikarli edi, yarmida chiqib ketdik.
Kitob do'konida yangi romanlar bormi?
Yomg'ir tufayli o'yin qoldirildi.
Fuqarolarimiz xavfsizligi biz uchun eng muhim.
Iltimos, eshikni yopib qo'ying.
Bu qo'shiqni eshitsam bolaligim esimga tushadi.
Majlis soat uchda boshlanadi.
Iqtisodchilar inflyatsiya pasayishini aytmoqda.
Katta rahmat, ajoyib ish qildingiz.
Buyurtma hali ham kelmadi, qachon keladi?
Yangi yil bayramiga tayyorgarlik ketmoqda.
Bu mahsulot narxiga nisbatan ancha sifatli.
Shahar hokimligi yo'llarni ta'mirlamoqda.
Gaz narxi yana oshdi.
Oramizda hech qanday muammo yo'q.
O'tgan yozda Samarqandda dam oldik.
Men ham siz bilan borishni xohlayman.
Konsullik navbatiga yozilish juda qiyin.
Terma jamoa jahon chempionatiga yo'llanma oldi.
O'qituvchimiz bizga uy vazifasi berdi.
Ilova yaxshi, lekin juda sekin ishlaydi.
Siz bilan birga ishlashdan xursandmiz.
Assalomu alaykum, qalaysiz, ishlaringiz yaxshimi?
Juda zo'r dastur ekan, menga yoqdi.
Nega bunday qilyapsiz, tushunmayapman.
Bugun ishga kech qoldim, chunki avtobus kelmadi.
"""

SEED_UZ_CYRL = """
Бугун ҳаво жуда яхши, биз боққа сайр қилгани бордик.
Ўзбекистон ва Қозоғистон ўртасидаги савдо ўтган йили ўсди.
Ташқи ишлар вазири бугун матбуот анжумани ўтказди.
Бу китобни ўқишингизни албатта маслаҳат бераман.
Реклама жуда кўп, илова доим қотиб қолади.
Элчихона виза аризаларини душанба куни қабул қилади.
Катта раҳмат, ажойиб иш қилдингиз.
Фуқароларимиз хавфсизлиги биз учун энг муҳим.
"""

SEED_KY = """
Бүгүн аба ырайы абдан жакшы, биз сейилбакка бардык.
Эртең эртең менен Бишкекке учам.
Бул тиркеме чындап эле ыңгайлуу, баарына сунуштайм.
Кыргызстан менен Казакстандын ортосундагы соода өткөн жылы өстү.
Тышкы иштер министри бүгүн маалымат жыйын өткөрдү.
Балдар мектептен үйгө кеч кайтышты.
Кечки тамакка эмне жейбиз?
Бул китепти окууну сөзсүз сунуштайм.
Шайлоонун жыйынтыгы эртең жарыяланат.
Өкмөт жаңы экономикалык чараларды жарыялады.
Тилекке каршы, жыйынга катыша албайм, кечирим сурайм.
Телефонумдун заряды бүттү, кийинчерээк чалам.
Жарнамалар өтө көп, тиркеме дайыма катып калат.
Президент расмий сапар менен Астанага барды.
Студенттер сынактарга даярданып жатышат.
Кофе ичесизби же чайбы?
Баалар күндөн күнгө өсүүдө.
Элчилик визага арыздарды дүйшөмбү күнү кабыл алат.
Бул кабарды укканда абдан таң калдым.
Жер титирөө болгон аймакка жардам жөнөтүлдү.
Тиркемени жаңылагандан кийин ачылбай калды.
Кыргыз тили түрк тилдеринин бири.
Апам бизге палоо бышырып берди.
Шаарда тыгын абдан катуу болду.
Бул тууралуу эмне деп ойлойсуз?
Тейлөөнүн сапаты абдан начар, мындан ары келбейм.
Аэропортто узун кезек бар эле.
Иним университетти бүтүрүп, жумуш издеп жатат.
Өлкөбүздүн келечеги жаштардын колунда.
Эки мамлекеттин ортосунда кызматташтык келишимине кол коюлду.
Эртең менен чуркаганды жакшы көрөм.
Кино абдан кызыксыз болду, жарымында чыгып кеттик.
Жамгырдан улам оюн кийинкиге калтырылды.
Жарандарыбыздын коопсуздугу биз үчүн эң маанилүү.
Сураныч, эшикти жаап коюңузчу.
Жыйын саат үчтө башталат.
Чоң рахмат, сонун иш жасадыңыздар.
Буйрутма дагы эле келген жок, качан келет?
Жаңы жылга даярдык жүрүп жатат.
Бул товар баасына жараша сапаттуу экен.
Салам, кандайсың, иштериң жакшыбы?
Абдан жакшы программа экен, мага жакты.
Эмне үчүн мындай кылып жатасың, түшүнбөй жатам.
Бүгүн жумушка кечигип калдым, анткени автобус келген жок.
Ысык-Көлгө жайкысын көп туристтер келет.
"""

SEED_MN = """
Өнөөдөр цаг агаар их сайхан байна, бид цэцэрлэгт хүрээлэнд зугаалсан.
Маргааш өглөө эрт Улаанбаатар руу нисна.
Энэ програм үнэхээр их хэрэгтэй, бүгдэд санал болгож байна.
Монгол Улс болон Казахстаны хоорондын худалдаа өнгөрсөн жил өссөн.
Гадаад харилцааны сайд өнөөдөр хэвлэлийн бага хурал хийлээ.
Хүүхдүүд сургуулиасаа гэртээ орой ирсэн.
Оройн хоолонд юу идэх вэ?
Энэ номыг заавал уншаарай гэж зөвлөж байна.
Сонгуулийн дүн маргааш зарлагдана.
Засгийн газар эдийн засгийн шинэ арга хэмжээ зарлалаа.
Уучлаарай, би хуралд оролцож чадахгүй нь.
Утасны цэнэг дууссан, дараа залгая.
Сурталчилгаа хэтэрхий их байна, програм байнга гацдаг.
Ерөнхийлөгч албан ёсны айлчлалаар Астанад очлоо.
Оюутнууд шалгалтандаа бэлдэж байна.
Кофе уух уу, эсвэл цай уух уу?
Үнэ өдрөөс өдөрт нэмэгдэж байна.
Элчин сайдын яам визийн өргөдлийг даваа гарагт хүлээн авна.
Энэ мэдээг сонсоод их гайхсан.
Газар хөдлөлтөд өртсөн бүс нутагт тусламж илгээлээ.
Монгол хэл бол монгол хэлний бүлгийн хэл юм.
Ээж бидэнд бууз хийж өгсөн.
Хотод түгжрэл их байсан.
Энэ талаар та юу гэж бодож байна вэ?
Үйлчилгээний чанар маш муу, дахиж ирэхгүй.
Нисэх буудалд урт дараалал байсан.
Эх орны ирээдүй залуучуудын гарт байна.
Хоёр улсын хооронд хамтын ажиллагааны гэрээ байгууллаа.
Кино их уйтгартай байсан, бид дундуур нь гарсан.
Борооны улмаас тоглолтыг хойшлуулав.
Иргэдийнхээ аюулгүй байдал бидний хувьд хамгийн чухал.
Хурал гурван цагт эхэлнэ.
Маш их баярлалаа, та нар сайхан ажилласан байна.
Захиалга одоо болтол ирээгүй, хэзээ ирэх вэ?
Сайн байна уу, юу байна, ажил сайн уу?
Шинэ жилийн бэлтгэл ажил үргэлжилж байна.
Наадмын үеэр олон жуулчид ирдэг.
Би ч гэсэн тантай хамт явмаар байна.
"""

SEED_UK = """
Сьогодні чудова погода, ми пішли гуляти в парк.
Завтра зранку я лечу до Києва.
Цей застосунок справді дуже зручний, раджу всім.
Торгівля між Україною та Казахстаном минулого року зросла.
Міністр закордонних справ сьогодні провів пресконференцію.
Діти повернулися зі школи пізно.
Що ми будемо їсти на вечерю?
Обов'язково раджу прочитати цю книжку.
Результати виборів оголосять завтра.
Уряд оголосив нові економічні заходи.
На жаль, я не зможу прийти на зустріч, вибачте.
У телефона сів акумулятор, передзвоню пізніше.
Реклами забагато, застосунок постійно зависає.
Президент прибув з офіційним візитом до Астани.
Студенти готуються до іспитів.
Будете каву чи чай?
Ціни зростають щодня.
Посольство приймає заяви на візу щопонеділка.
Я дуже здивувався, коли почув цю новину.
До постраждалого регіону відправили гуманітарну допомогу.
Дякую, ми чудово провели вихідні.
Після оновлення застосунок не відкривається.
Мама приготувала нам вареники.
У місті були великі затори.
Що ви про це думаєте?
Якість обслуговування жахлива, більше не прийду.
В аеропорту була довга черга.
Мій брат закінчив університет і шукає роботу.
Майбутнє нашої держави в руках молоді.
Між двома країнами підписано угоду про співпрацю.
Фільм був дуже нудний, ми пішли з половини.
Матч перенесли через дощ.
Безпека наших громадян для нас найважливіша.
Будь ласка, зачиніть двері.
Зустріч почнеться о третій годині.
Щиро дякую, ви чудово попрацювали.
Замовлення досі не прийшло, коли його чекати?
Привіт, як справи, що нового?
Підготовка до нового року триває.
Я теж хочу піти з вами.
"""

SEEDS = {
    "tr": SEED_TR,
    "uz": SEED_UZ + SEED_UZ_CYRL,
    "ky": SEED_KY,
    "mn": SEED_MN,
    "uk": SEED_UK,
}

# --------------------------------------------------------------------------------------------
# Kazakh Cyrillic -> official 2021 Latin alphabet, and the informal ways people type Kazakh.
# --------------------------------------------------------------------------------------------
KK_LATIN_2018 = dict(
    KK_LATIN_2021,
    **{
        "ә": "á",
        "ғ": "ǵ",
        "ң": "ń",
        "ө": "ó",
        "ұ": "u",
        "ү": "ú",
        "у": "ý",
        "ш": "sh",
        "ы": "y",
        "і": "i",
        "и": "ı",
        "й": "ı",
        "ч": "ch",
    },
)
# Each Cyrillic letter -> the spellings people actually use on phones without Kazakh layouts.
KK_INFORMAL = {
    "ә": ("a", "a", "ae", "ä"),
    "ғ": ("g", "g", "gh"),
    "қ": ("k", "q", "k", "h"),
    "ң": ("n", "ng", "n"),
    "ө": ("o", "o", "ö"),
    "ұ": ("u",),
    "ү": ("u", "u", "ü"),
    "һ": ("h",),
    "і": ("i",),
    "ы": ("y", "i", "i"),
    "ш": ("sh", "w", "sh", "x"),
    "ж": ("j", "zh", "j"),
    "щ": ("sh",),
    "ч": ("ch",),
    "ц": ("ts", "c"),
    "х": ("h", "kh"),
    "у": ("u", "w", "u"),
    "й": ("i", "y"),
    "и": ("i", "y", "i"),
    "я": ("ya", "ia"),
    "ю": ("yu", "iu"),
    "ё": ("yo",),
    "э": ("e",),
    "ъ": ("",),
    "ь": ("",),
}
# Kazakh typed on a Russian keyboard: the look-alike Russian letter.
KK_TO_RU_KEYS = {"ә": "а", "ғ": "г", "қ": "к", "ң": "н", "ө": "о", "ұ": "у", "ү": "у", "һ": "х"}

_CYR_LAT_BASE = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "з": "z",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "ф": "f",
}


def _match_case(src: str, out: str) -> str:
    return out.capitalize() if src.isupper() and out else out


def translit_2021(text: str, style: str = "2021") -> str:
    """Transliterate Kazakh Cyrillic into the 2021 (or 2018) official Latin alphabet."""
    table = KK_LATIN_2021 if style == "2021" else KK_LATIN_2018
    return "".join(_match_case(ch, table.get(ch.lower(), ch)) for ch in text)


def translit_informal(text: str, rng: random.Random) -> str:
    """Transliterate Kazakh Cyrillic the way people type it in Latin letters without diacritics."""
    choice = {k: rng.choice(v) for k, v in KK_INFORMAL.items()}
    out = []
    for ch in text:
        low = ch.lower()
        rep = choice.get(low) or _CYR_LAT_BASE.get(low)
        out.append(_match_case(ch, rep) if rep is not None else ch)
    return "".join(out)


def strip_kazakh_letters(text: str, rng: random.Random) -> str:
    """Replace Kazakh letters by Russian look-alikes, as typed on a Russian keyboard."""
    i_as = rng.choice(("и", "и", "ы", "і"))
    table = dict(KK_TO_RU_KEYS, **{"і": i_as})
    return "".join(_match_case(ch, table[ch.lower()]) if ch.lower() in table else ch for ch in text)


# --------------------------------------------------------------------------------------------
# Data readers (train and validation files only).
# --------------------------------------------------------------------------------------------
def shared_data() -> Path:
    return Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _heldout(text: str) -> bool:
    digest = hashlib.md5(" ".join(text.lower().split()).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % 100 < HELDOUT_PERCENT


def _zip_csv(path: Path) -> Iterator[dict[str, str]]:
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".csv"))
        with zf.open(name) as fh:
            yield from csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8"))


def kazsandra(data: Path) -> tuple[list[str], list[str]]:
    """Return (train texts, held-out texts): train files vs validation files minus any overlap."""
    train: dict[str, str] = {}
    for name in ("03_pc_train_rus.zip", "08_sc_train_rus.zip"):
        for row in _zip_csv(data / "kazsandra" / name):
            train[row["custom_id"]] = row["text"]
    seen_text = {" ".join(t.lower().split()) for t in train.values()}
    held: dict[str, str] = {}
    for name in ("04_pc_valid.zip", "09_sc_valid.zip"):
        for row in _zip_csv(data / "kazsandra" / name):
            key = " ".join(row["text"].lower().split())
            if row["custom_id"] not in train and key not in seen_text:
                held[row["custom_id"]] = row["text"]
    return sorted(set(train.values())), sorted(set(held.values()))


def kaznerd(data: Path) -> list[str]:
    """Return KazNERD sentences rebuilt from the IOB2 tokens."""
    sents: list[str] = []
    tokens: list[str] = []
    for line in (data / "kaznerd" / "IOB2_valid.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if tokens:
                sents.append(_detok(tokens))
            tokens = []
            continue
        tokens.append(line.rsplit(" ", 1)[0])
    if tokens:
        sents.append(_detok(tokens))
    return sents


def _detok(tokens: list[str]) -> str:
    text = " ".join(tokens)
    return re.sub(r"\s+([,.;:!?»)])", r"\1", re.sub(r"([«(])\s+", r"\1", text))


def ktb_train(data: Path) -> list[str]:
    path = data / "ud-kazakh-ktb" / "kk_ktb-ud-train.conllu"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln[9:].strip() for ln in lines if ln.startswith("# text = ")]


def rusentne(data: Path, name: str) -> list[str]:
    with (data / "rusentne-2023" / name).open(encoding="utf-8") as fh:
        return sorted({row["sentence"] for row in csv.DictReader(fh, delimiter="\t")})


def telegram_ru(data: Path) -> list[str]:
    out = []
    for path in sorted((data / "telegram-ru-news").glob("*_messages.json")):
        for msg in json.loads(path.read_text(encoding="utf-8")):
            text = msg.get("text") or ""
            if isinstance(text, str) and len(text) > 20:
                out.append(text)
    return out


_CYR = re.compile("[\u0400-\u04ff]")
_LAT = re.compile("[A-Za-z]")


def _mostly(pattern: re.Pattern[str], text: str) -> bool:
    clean = lid.normalize(text)
    hits = len(pattern.findall(clean))
    letters = sum(1 for ch in clean if ch.isalpha())
    return letters >= 10 and hits >= 0.8 * letters


def ira(data: Path) -> dict[str, list[str]]:
    """Return IRA tweets labelled English or Russian whose script agrees with the label."""
    out: dict[str, list[str]] = {"en": [], "ru": []}
    for path in sorted((data / "ira-troll-tweets-sample" / "tweets").glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                text = row["content"]
                if row["language"] == "English" and _mostly(_LAT, text):
                    out["en"].append(text)
                elif row["language"] == "Russian" and _mostly(_CYR, text):
                    out["ru"].append(text)
    return {k: sorted(set(v)) for k, v in out.items()}


def twarc(data: Path) -> dict[str, list[str]]:
    """Return twarc tweets grouped by the platform's own lang field."""
    out: dict[str, set[str]] = {}
    seen: set[str] = set()
    for path in sorted((data / "formats" / "twitter-v2-twarc-csv" / "test-data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            items = doc.get("data")
            tweets = (
                items if isinstance(items, list) else ([items] if isinstance(items, dict) else [])
            )
            tweets += (doc.get("includes") or {}).get("tweets", [])
            for t in tweets:
                if isinstance(t, dict) and "lang" in t and t.get("id") not in seen:
                    seen.add(t["id"])
                    out.setdefault(t["lang"], set()).add(t["text"])
    return {k: sorted(v) for k, v in out.items()}


def rss_zh(data: Path) -> list[str]:
    """Return the titles and descriptions of the GB2312 Chinese feed."""
    raw = (data / "formats" / "rss-atom-rss-parser" / "encoding-gb2312.xml").read_bytes()
    text = raw.decode("gb18030", errors="replace")
    parts = re.findall(r"<(?:title|description)>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</", text, re.S)
    return [re.sub(r"<[^>]+>", " ", p).strip() for p in parts if re.search("[\u4e00-\u9fff]{4}", p)]


UZ_LAT_CYR = [
    ("o'", "ў"),
    ("g'", "ғ"),
    ("sh", "ш"),
    ("ch", "ч"),
    ("yo", "ё"),
    ("yu", "ю"),
    ("ya", "я"),
    ("ye", "е"),
    ("ts", "ц"),
    ("a", "а"),
    ("b", "б"),
    ("d", "д"),
    ("e", "е"),
    ("f", "ф"),
    ("g", "г"),
    ("h", "ҳ"),
    ("i", "и"),
    ("j", "ж"),
    ("k", "к"),
    ("l", "л"),
    ("m", "м"),
    ("n", "н"),
    ("o", "о"),
    ("p", "п"),
    ("q", "қ"),
    ("r", "р"),
    ("s", "с"),
    ("t", "т"),
    ("u", "у"),
    ("v", "в"),
    ("x", "х"),
    ("y", "й"),
    ("z", "з"),
    ("'", "ъ"),
]


def uz_to_cyrillic(text: str) -> str:
    """Transliterate Uzbek Latin to Uzbek Cyrillic (word-initial e -> э)."""
    out = re.sub(r"\b[Ee]", lambda m: "Э" if m.group(0) == "E" else "э", text)
    low_first = out
    for lat, cyr in UZ_LAT_CYR:
        low_first = low_first.replace(lat, cyr).replace(lat.capitalize(), cyr.upper())
    return low_first


def seed_lines(lang: str) -> list[str]:
    return [ln.strip() for ln in SEEDS[lang].strip().splitlines() if ln.strip()]


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def build_training(data: Path, rng: random.Random) -> dict[str, list[str]]:
    """Return training texts per class."""
    ks_train, _ = kazsandra(data)
    kk_cyr = [t for t in ks_train if _CYR.search(t)] + ktb_train(data)
    kk_lat = [t for t in ks_train if not _CYR.search(t) and _LAT.search(t)]
    kk: list[str] = list(kk_cyr)
    kk_letters = re.compile("[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")
    for text in kk_cyr:
        if kk_letters.search(text) and rng.random() < 0.6:
            kk.append(strip_kazakh_letters(text, rng))
        r = rng.random()
        if r < 0.15:
            kk.append(translit_2021(text))
        elif r < 0.20:
            kk.append(translit_2021(text, "2018"))
        elif r < 0.45:
            kk.append(translit_informal(text, rng))
    kk.extend(kk_lat * 3)
    ira_all = ira(data)
    ru = [t for t in telegram_ru(data) if not _heldout(t)]
    ru += [t for t in ira_all["ru"] if not _heldout(t)]
    ru += rusentne(data, "train_data.csv")
    en = [t for t in ira_all["en"] if not _heldout(t)]
    rng.shuffle(en)
    out: dict[str, list[str]] = {"ru-Cyrl": ru, "en-Latn": en[:15000]}
    for text in kk:
        out.setdefault("kk-Cyrl" if _CYR.search(text) else "kk-Latn", []).append(text)
    for lang in SEEDS:
        lines = seed_lines(lang)
        if lang == "tr":
            fold = str.maketrans("çğıöşüÇĞİÖŞÜ", "cgiosuCGIOSU")
            lines += [ln.translate(fold) for ln in lines]
        if lang == "uz":
            lines += [ln.replace("'", "ʻ") for ln in lines if "'" in ln]
            lines += [uz_to_cyrillic(ln) for ln in seed_lines("uz") if not _CYR.search(ln)]
        for text in lines:
            out.setdefault(f"{lang}-{'Cyrl' if _CYR.search(text) else 'Latn'}", []).append(text)
    return out


def train(texts: dict[str, list[str]]) -> tuple[list[str], list[str], np.ndarray]:
    """Return (classes, vocabulary, log-probabilities [V, C]) of a multinomial naive Bayes."""
    classes = sorted(texts)
    counts = {c: Counter() for c in classes}
    for c in classes:
        for text in texts[c]:
            counts[c].update(lid.ngrams(lid.normalize(text)))
    vocab: set[str] = set()
    for c in classes:
        vocab.update(g for g, _ in counts[c].most_common(TOP_PER_CLASS))
    ordered = sorted(vocab)
    matrix = np.zeros((len(ordered), len(classes)), dtype=np.float64)
    for j, c in enumerate(classes):
        col = np.array([counts[c].get(g, 0) for g in ordered], dtype=np.float64)
        matrix[:, j] = np.log((col + ALPHA) / (col.sum() + ALPHA * len(ordered)))
    return classes, ordered, matrix


def save(path: Path, classes: list[str], vocab: list[str], logp: np.ndarray, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        classes=np.array(classes),
        ngrams=np.array(vocab),
        logp=logp.astype(np.float16),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def eval_sets(data: Path, rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    """Return named held-out sets of (text, gold) pairs; none of them was trained on."""
    _, ks_held = kazsandra(data)
    kk_letters = re.compile("[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")
    nerd = kaznerd(data)
    ira_all = ira(data)
    tw = twarc(data)
    sets: dict[str, list[tuple[str, str]]] = {
        "kaznerd kk-Cyrl (all, unseen)": [(t, "kk") for t in nerd],
        "rusentne validation ru (all, unseen)": [
            (t, "ru") for t in rusentne(data, "validation_data_labeled.csv")
        ],
        "rusentne train ru (all, in training)": [
            (t, "ru") for t in rusentne(data, "train_data.csv")
        ],
        "kazsandra valid kk with Kazakh letters": [
            (t, "kk") for t in ks_held if kk_letters.search(t)
        ],
        "kazsandra valid kk Cyrillic without Kazakh letters": [
            (t, "kk") for t in ks_held if _CYR.search(t) and not kk_letters.search(t)
        ],
        "kazsandra valid kk Latin script": [
            (t, "kk") for t in ks_held if not _CYR.search(t) and len(_LAT.findall(t)) >= 3
        ],
        "kaznerd -> Latin 2021 (synthetic)": [(translit_2021(t), "kk") for t in nerd[::5]],
        "kaznerd -> informal Latin (synthetic)": [
            (translit_informal(t, rng), "kk") for t in nerd[1::5]
        ],
        "kaznerd -> no Kazakh letters (synthetic)": [
            (strip_kazakh_letters(t, rng), "kk") for t in nerd[2::5]
        ],
        "telegram ru (held-out 15%)": [(t, "ru") for t in telegram_ru(data) if _heldout(t)],
        "IRA ru tweets (held-out 15%)": [(t, "ru") for t in ira_all["ru"] if _heldout(t)],
        "IRA en tweets (held-out 15%)": [(t, "en") for t in ira_all["en"] if _heldout(t)],
        "twarc en tweets (unseen)": [(t, "en") for t in tw.get("en", [])],
        "twarc ar tweets (unseen)": [(t, "ar") for t in tw.get("ar", [])],
        "rss zh GB2312 items (unseen)": [(t, "zh") for t in rss_zh(data)],
    }
    fixtures = ROOT / "tests" / "fixtures" / "nlp"
    for path in sorted(fixtures.glob("langid_*.csv")):
        with path.open(encoding="utf-8") as fh:
            rows = [(r["text"], r["lang"]) for r in csv.DictReader(fh)]
        sets[f"hand-written {path.name}"] = rows
    return sets


def report(name: str, result: dict, out: Callable[[str], None] = print) -> None:
    per = " ".join(
        f"{k}:P{v['precision']:.3f}/R{v['recall']:.3f}/F{v['f1']:.3f}(n={v['support']})"
        for k, v in result["per_language"].items()
    )
    out(
        f"{name}: n={result['n']} accuracy={result['accuracy']:.4f} "
        f"macro-F1={result['macro_f1']:.4f} flagged-mixed={result['mixed_rate']:.4f}"
    )
    out(f"    per language: {per}")
    out(f"    confusion: {json.dumps(result['confusion'], ensure_ascii=False)}")


def evaluate_all(
    model: Path, data: Path, sets_only: Iterable[str] | None = None, errors: int = 0
) -> None:
    ident = lid.LanguageIdentifier(model)
    sets = eval_sets(data, random.Random(SEED + 1))
    pooled: list[tuple[str, str]] = []
    for name, pairs in sets.items():
        if sets_only and not any(s in name for s in sets_only):
            continue
        t0 = time.perf_counter()
        result = lid.evaluate(pairs, ident)
        dt = time.perf_counter() - t0
        report(f"{name} [{len(pairs) / dt:.0f} texts/s]", result)
        if errors:
            found = ident.detect_batch(t for t, _ in pairs)
            wrong = [(t, g, r) for (t, g), r in zip(pairs, found, strict=True) if r.lang != g]
            for text, gold, res in random.Random(SEED).sample(wrong, min(errors, len(wrong))):
                print(f"      {gold}->{res.lang} {res.score:.2f} {res.features} {text[:120]!r}")
        if "in training" not in name:
            pooled.extend(pairs)
    std = sets["kaznerd kk-Cyrl (all, unseen)"] + sets["rusentne validation ru (all, unseen)"]
    std += sets["rusentne train ru (all, in training)"]
    res = lid.evaluate(std, ident)
    kk_as_ru = res["confusion"].get("kk", {}).get("ru", 0)
    ru_as_kk = res["confusion"].get("ru", {}).get("kk", 0)
    print(f"standard Cyrillic kk/ru confusion: kk->ru {kk_as_ru}, ru->kk {ru_as_kk} of {res['n']}")
    report("POOLED held-out (all sets above except in-training)", lid.evaluate(pooled, ident))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=lid.MODEL_PATH)
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--sets", nargs="*", help="only evaluate sets whose name contains these")
    parser.add_argument("--errors", type=int, default=0, help="print this many errors per set")
    args = parser.parse_args()
    data = shared_data()
    if not data.is_dir():
        sys.exit(f"shared data not found at {data} (set ELSHI_SHARED_DATA)")
    if not args.eval_only:
        t0 = time.perf_counter()
        texts = build_training(data, random.Random(SEED))
        for lang, items in sorted(texts.items()):
            print(f"train {lang}: {len(items)} texts")
        classes, vocab, logp = train(texts)
        meta = {
            "version": 1,
            "orders": [1, 2, 3, 4],
            "whole_words": True,
            "alpha": ALPHA,
            "top_per_class": TOP_PER_CLASS,
            "temperature": 8.0,
            "train_counts": {k: len(v) for k, v in texts.items()},
        }
        save(args.out, classes, vocab, logp, meta)
        size = args.out.stat().st_size
        print(
            f"wrote {args.out.name}: {len(vocab)} n-grams x {len(classes)} classes, "
            f"{size} bytes, {time.perf_counter() - t0:.1f}s"
        )
    evaluate_all(args.out, data, args.sets, args.errors)


if __name__ == "__main__":
    main()
