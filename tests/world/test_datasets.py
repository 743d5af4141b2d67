"""Data sets in the layouts they are distributed in: ML-100K, RecBole atomic, KuaiRec/KuaiRand, Amazon JSONL."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from recoworld.world.datasets import detect_layout, load_dataset
from recoworld.world.datasets import load_catalog

GENRE_FLAGS = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"


def write_ml100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n2\t3\t1\t881250952\n3\t9\t4\t881250953\n")
    items = [f"1|Toy Story (1995)|01-Jan-1995||http://x|{GENRE_FLAGS}",
             "2|GoldenEye (1995)|01-Jan-1995||http://y|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0",
             "3|Caf\xe9 (1994)|01-Jan-1994||http://z|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0"]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    return folder


def write_atomic(folder: Path, name: str = "toy") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                          "u1\ti1\t5\t100\nu1\ti2\t2\t200\nu2\ti1\t4\t150\nu2\ti3\t3\t160\n")
    (folder / f"{name}.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                         "i1\tToy Story\t1995\tAnimation Comedy\ni2\tHeat\t1995\tAction Crime\n")
    (folder / f"{name}.user").write_text("user_id:token\tage:token\tgender:token\nu1\t24\tM\nu2\t53\tF\n")
    return folder


def test_ml100k_native_layout(tmp_path):
    data = load_dataset(write_ml100k(tmp_path / "ml-100k"))
    assert data.layout == "ml100k"
    assert list(data.catalog.item_id) == ["1", "2", "3"]
    assert data.catalog.title[2] == "Café (1994)"
    assert data.catalog.topic_names[data.catalog.topic[0]] == "Animation" and data.catalog.tags[0] == ("Animation", "Children's", "Comedy")
    assert data.catalog.topic_names[data.catalog.topic[2]] == "unknown"
    assert len(data.interactions) == 4 and data.interactions.attrs["dropped_unknown_items"] == 1  # item 9 is not in u.item
    assert data.interactions["click"].tolist() == [1, 0, 1, 0]
    assert data.catalog.popularity[0] > data.catalog.popularity[1] and data.catalog.quality[0] > data.catalog.quality[2]
    assert sorted(data.users["user_id"]) == ["1", "2", "3"] and "occupation" in data.users
    assert detect_layout(tmp_path / "ml-100k" / "u.data") == "ml100k"


def test_recbole_atomic_folder_and_inter_path(tmp_path):
    folder = write_atomic(tmp_path / "toy")
    for path in (folder, folder / "toy.inter"):
        data = load_dataset(path)
        assert data.layout == "atomic"
        assert list(data.catalog.item_id) == ["i1", "i2", "i3"]  # i3 is rated but not in toy.item
        assert data.catalog.title[0] == "Toy Story" and data.catalog.topic_names[data.catalog.topic[1]] == "Action"
        assert data.interactions["timestamp"].dtype == np.int64 and data.interactions["rating"].tolist() == [5, 2, 4, 3]
        assert list(data.users["gender"]) == ["M", "F"]
    assert load_catalog("dataset", folder).item_id.tolist() == ["i1", "i2", "i3"]


def test_kuairec_and_kuairand_csv(tmp_path):
    rec = tmp_path / "kuairec"
    rec.mkdir()
    (rec / "small_matrix.csv").write_text("user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio\n"
                                          "14,148,4381,6067,2020-07-05 05:27:48.378,20200705,1593898068.378,0.72\n"
                                          "14,183,11635,6100,2020-07-05 05:28:00.057,20200705,1593898080.057,1.90\n"
                                          "19,148,22422,10867,2020-07-05 05:29:09.479,20200705,1593898149.479,2.06\n")
    (rec / "item_categories.csv").write_text('video_id,feat\n148,"[8]"\n183,"[27, 9]"\n')
    data = load_dataset(rec)
    assert data.layout == "kuairec" and data.catalog.topic_names == ["feat_27", "feat_8"]
    assert data.interactions["watch_ratio"].tolist() == [0.72, 1.90, 2.06]
    assert data.interactions["timestamp"].tolist() == [1593898068, 1593898080, 1593898149]
    rand = tmp_path / "kuairand"
    rand.mkdir()
    (rand / "log_standard_4_08_to_4_21_1k.csv").write_text("user_id,video_id,date,hourmin,time_ms,is_click,is_like\n"
                                                           "0,10,20220408,1200,1649390400000,1,0\n0,11,20220408,1201,1649390460000,0,0\n")
    (rand / "video_features_basic_1k.csv").write_text("video_id,author_id,video_type,tag\n10,3,NORMAL,5\n11,4,AD,\n")
    data = load_dataset(rand)
    assert data.interactions["click"].tolist() == [1.0, 0.0] and data.interactions["timestamp"].tolist() == [1649390400, 1649390460]
    assert data.catalog.topic_names == ["tag_5", "unknown"]


@pytest.mark.parametrize("gz", [False, True])
def test_amazon_reviews_jsonl_2018_and_2023(tmp_path, gz):
    folder = tmp_path / "amazon"
    folder.mkdir()
    rows = [{"overall": 5.0, "reviewerID": "A1", "asin": "B1", "unixReviewTime": 1400000000},
            {"overall": 2.0, "reviewerID": "A2", "asin": "B2", "unixReviewTime": 1400000100}]
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    path = folder / ("Books.jsonl.gz" if gz else "Books.jsonl")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    (folder / "meta_Books.jsonl").write_text(json.dumps({"asin": "B1", "title": "A book", "category": ["Books", "Fiction"]}) + "\n")
    data = load_dataset(folder)
    assert data.layout == "amazon" and data.interactions["rating"].tolist() == [5.0, 2.0]
    assert data.catalog.title[0] == "A book" and data.catalog.topic_names[data.catalog.topic[0]] == "Fiction"
    new = tmp_path / "amazon2023"
    new.mkdir()
    (new / "Toys.jsonl").write_text(json.dumps({"rating": 4.0, "user_id": "U", "asin": "X1", "parent_asin": "P1",
                                                "timestamp": 1588687728923}) + "\n")
    data = load_dataset(new / "Toys.jsonl")
    assert data.interactions["item_id"].tolist() == ["P1"] and data.interactions["timestamp"].tolist() == [1588687728]


def _one_line(exc, *parts):
    msg = str(exc.value)
    assert "\n" not in msg and all(p in msg for p in parts), msg


def test_bad_files_give_one_line_naming_file_and_column(tmp_path):
    folder = write_ml100k(tmp_path / "a")
    (folder / "u.data").write_text("1\t1\tfive\t881250949\n")
    with pytest.raises(ValueError) as exc:
        load_dataset(folder)
    _one_line(exc, "u.data", "rating")
    folder = write_atomic(tmp_path / "b")
    (folder / "toy.inter").write_text("user_id:token\trating:float\ttimestamp:float\nu1\t5\t1\n")
    with pytest.raises(ValueError) as exc:
        load_dataset(folder)
    _one_line(exc, "toy.inter", "item_id")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "Books.jsonl").write_text('{"overall": 5.0, "reviewerID": "A1", "asin": "B1"}\n')
    with pytest.raises(ValueError) as exc:
        load_dataset(tmp_path / "c")
    _one_line(exc, "Books.jsonl", "unixReviewTime")
    (tmp_path / "c" / "Books.jsonl").write_text('{"overall": 5.0,\n')
    with pytest.raises(ValueError) as exc:
        load_dataset(tmp_path / "c")
    _one_line(exc, "Books.jsonl", "line 1")
    kuai = tmp_path / "d"
    kuai.mkdir()
    (kuai / "small_matrix.csv").write_text("user_id,video_id,timestamp,watch_ratio\n1,2,100,abc\n")
    with pytest.raises(ValueError) as exc:
        load_dataset(kuai)
    _one_line(exc, "small_matrix.csv", "watch_ratio")
