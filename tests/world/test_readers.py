"""Loaders: MovieLens folders (both layouts), generic items and interactions files, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recoworld.world import readers
from recoworld.world.datasets import load_catalog
from recoworld.world.catalog import Catalog
from recoworld.world.embeddings import HashingEncoder

MOVIES_CSV = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,Jumanji (1995),Adventure|Children|Fantasy
3,"American President, The (1995)",Comedy|Drama|Romance
4,Unseen Film (2001),Drama
5,Nothing Listed,(no genres listed)
"""
# movie 1: 5 ratings, movie 2: 3, movie 3: 2, movie 4: none, movie 5: 1; movie 99 is unknown (2 rows)
RATINGS_CSV = """userId,movieId,rating,timestamp
1,1,4.0,964982703
1,2,4.5,964981247
1,3,2.0,964982224
2,1,5.0,964983815
2,2,3.0,964982931
2,99,4.0,964982400
3,1,3.5,964982224
3,3,0.5,964983815
3,5,5.0,964982931
4,1,4.0,964983000
4,99,1.0,964983001
5,1,1.0,964983002
5,2,2.5,964983003
"""


def write_ml_small(folder: Path, movies: str = MOVIES_CSV, ratings: str = RATINGS_CSV) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.csv").write_text(movies)
    (folder / "ratings.csv").write_text(ratings)
    (folder / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n")  # present in the real folder
    return folder


def write_ml_1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    movies = [
        "1::Toy Story (1995)::Animation|Children's|Comedy",
        "2::Café (1999)::Drama|Romance",
        '3::"Great Day in Harlem, A" (1994)::Documentary',
    ]
    ratings = [
        "1::1::5::978300760",
        "1::2::3::978302109",
        "2::1::4::978301968",
        "2::3::2::978300275",
        "3::1::4::978824291",
        "3::7::5::978824291",  # unknown movie
    ]
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    (folder / "ratings.dat").write_bytes(("\n".join(ratings) + "\n").encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n")
    return folder


def assert_one_line(exc: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, msg


# --------------------------------------------------------------------- MovieLens
def test_movielens_small_catalog(tmp_path: Path) -> None:
    catalog, inter = readers.load_movielens(write_ml_small(tmp_path / "ml-latest-small"))
    assert len(catalog) == 5
    assert list(catalog.item_id) == ["1", "2", "3", "4", "5"]
    frame = catalog.to_frame().set_index("item_id")
    assert frame.loc["1", "topic"] == "Adventure"
    assert frame.loc["3", "topic"] == "Comedy"
    assert frame.loc["3", "title"] == "American President, The (1995)"
    assert frame.loc["5", "topic"] == "unknown"
    assert catalog.tags[0] == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert catalog.tags[4] == ()
    assert frame.loc["3", "description"] == "A Comedy|Drama|Romance film from 1995"
    assert frame.loc["5", "description"] == "A film"
    assert np.all(catalog.duration == 6000.0)
    assert np.all(catalog.created_day == 0)
    assert catalog.embeddings.shape == (5, 64)
    np.testing.assert_allclose(np.linalg.norm(catalog.embeddings, axis=1), 1.0, rtol=1e-5)


def test_movielens_popularity_follows_rating_counts(tmp_path: Path) -> None:
    catalog, _ = readers.load_movielens(write_ml_small(tmp_path))
    pop = dict(zip(catalog.item_id, catalog.popularity))
    # counts: 1 -> 5, 2 -> 3, 3 -> 2, 5 -> 1, 4 -> 0 (unrated)
    assert pop["1"] == 1.0
    assert pop["1"] > pop["2"] > pop["3"] > pop["5"] > pop["4"]
    assert pop["4"] == 0.0


def test_movielens_quality_is_shrunk_mean_rating(tmp_path: Path) -> None:
    catalog, inter = readers.load_movielens(write_ml_small(tmp_path))
    q = dict(zip(catalog.item_id, catalog.quality.astype(float)))
    assert all(0.0 <= v <= 1.0 for v in q.values())
    global_mean = inter["rating"].mean()
    # unrated movie sits exactly at the global mean on the 0.5..5 scale
    assert q["4"] == pytest.approx((global_mean - 0.5) / 4.5, abs=1e-6)
    # one 5-star rating moves movie 5 above the mean, but only a little (m = 10)
    expected_5 = ((5.0 + 10 * global_mean) / 11 - 0.5) / 4.5
    assert q["5"] == pytest.approx(expected_5, abs=1e-6)
    assert q["4"] < q["5"] < (5.0 - 0.5) / 4.5
    # movie 3 (mean 1.25) ends below the unrated one
    assert q["3"] < q["4"]


def test_movielens_interactions(tmp_path: Path) -> None:
    _, inter = readers.load_movielens(write_ml_small(tmp_path))
    assert list(inter.columns) == ["user_id", "item_id", "timestamp", "rating", "click"]
    assert len(inter) == 11  # 13 ratings, 2 of the unknown movie 99
    assert inter.attrs["dropped_unknown_items"] == 2
    assert "99" not in set(inter["item_id"])
    assert inter["timestamp"].dtype == np.int64
    assert inter["rating"].dtype == np.float64
    assert pd.api.types.is_string_dtype(inter["user_id"]) and pd.api.types.is_string_dtype(inter["item_id"])
    assert inter["user_id"].iloc[0] == "1" and inter["item_id"].iloc[0] == "1"
    np.testing.assert_array_equal(inter["click"].to_numpy(), (inter["rating"] >= 4).astype(int).to_numpy())
    assert inter["click"].sum() == 5  # 4.0, 4.5, 5.0, 4.0, 5.0


def test_movielens_1m_layout_latin1(tmp_path: Path) -> None:
    catalog, inter = readers.load_movielens(write_ml_1m(tmp_path / "ml-1m"))
    assert len(catalog) == 3
    frame = catalog.to_frame().set_index("item_id")
    assert frame.loc["2", "title"] == "Café (1999)"
    assert frame.loc["2", "topic"] == "Drama"
    assert frame.loc["2", "description"] == "A Drama|Romance film from 1999"
    assert frame.loc["1", "topic"] == "Animation"
    assert catalog.tags[0] == ("Animation", "Children's", "Comedy")
    assert frame.loc["3", "title"] == '"Great Day in Harlem, A" (1994)'
    assert len(inter) == 5 and inter.attrs["dropped_unknown_items"] == 1
    assert inter["timestamp"].dtype == np.int64 and inter["timestamp"].iloc[0] == 978300760
    assert list(inter["click"]) == [1, 0, 1, 0, 1]
    pop = dict(zip(catalog.item_id, catalog.popularity))
    assert pop["1"] > pop["2"]  # 3 ratings vs 1
    # ml-1m ratings are on a 1..5 scale: movie 1 (mean 4.33 shrunk toward 3.67) lies inside it
    assert 0.5 < catalog.quality[0] < 1.0


def test_movielens_encoder_is_used(tmp_path: Path) -> None:
    catalog, _ = readers.load_movielens(write_ml_small(tmp_path), encoder=HashingEncoder(dim=16))
    assert catalog.embeddings.shape == (5, 16)


def test_load_catalog_dispatch(tmp_path: Path) -> None:
    ml = load_catalog("movielens", str(write_ml_small(tmp_path / "ml")))
    assert isinstance(ml, Catalog) and len(ml) == 5
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,topic\na,Alpha,news\nb,Beta,sports\n")
    assert len(load_catalog("items", str(items))) == 2
    with pytest.raises(ValueError) as exc:
        load_catalog("youtube", str(items))
    assert_one_line(exc, "youtube", "movielens", "items")


def test_build_catalog_from_scenario_config(tmp_path: Path) -> None:
    from recoworld.scenario import CatalogConfig
    from recoworld.world.simulation import build_catalog

    folder = write_ml_small(tmp_path / "ml")
    catalog = build_catalog(CatalogConfig(source="movielens", path=str(folder)), seed=0)
    assert len(catalog) == 5 and catalog.embeddings.shape == (5, 64)


# ------------------------------------------------------------------- generic items
ITEMS_CSV = """item_id,title,topic,description,tags,creator,duration,quality,popularity
007,Pasta night,cooking,Quick pasta,food|pasta,Ann,300,0.8,0.9
008,Bread basics,cooking,,food|bread,Ann,600,0.6,0.4
009,Goal of the week,sports,Best goals,football,Bob,120,0.7,0.7
"""


def test_load_items_csv(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(ITEMS_CSV)
    catalog = readers.load_items(path, encoder=HashingEncoder(dim=32))
    assert len(catalog) == 3
    assert list(catalog.item_id) == ["007", "008", "009"]  # ids stay strings, leading zeros kept
    assert catalog.topic_names == ["cooking", "sports"]
    assert catalog.tags[0] == ("food", "pasta")
    assert catalog.item(2).creator == "Bob"
    np.testing.assert_allclose(catalog.popularity, [0.9, 0.4, 0.7])
    assert catalog.duration[1] == 600
    assert catalog.embeddings.shape == (3, 32)


def test_load_items_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "item_id": [1, 2, 3, 4],
            "title": ["a", "b", "c", "d"],
            "topic": ["x", "y", "x", "z"],
            "tags": [["t1", "t2"], [], ["t3"], ["t1"]],
        }
    )
    for name in ("items.parquet", "items.pq"):
        path = tmp_path / name
        frame.to_parquet(path)
        catalog = readers.load_items(path)
        assert len(catalog) == 4 and list(catalog.item_id) == ["1", "2", "3", "4"]
        assert catalog.n_topics == 3 and catalog.tags[0] == ("t1", "t2") and catalog.tags[1] == ()
        assert catalog.embeddings.shape == (4, 64)


# -------------------------------------------------------------- generic interactions
def test_load_interactions_csv_with_catalog(tmp_path: Path) -> None:
    catalog = Catalog.from_frame(pd.DataFrame({"item_id": ["a", "b"], "title": ["A", "B"], "topic": ["t", "t"]}))
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,item_id,timestamp,rating,click,watch_seconds,watch_ratio,like,device\n"
        "u1,a,100,4.5,1,30.5,0.5,0,phone\n"
        "u1,b,200,,0,0,0,0,tv\n"
        "u2,zz,300,3,1,10,0.1,1,phone\n"
        "u2,a,400,2,True,12,0.2,1,tv\n"
    )
    df = readers.load_interactions(path, catalog=catalog)
    assert len(df) == 3 and df.attrs["dropped_unknown_items"] == 1
    assert list(df["item_id"]) == ["a", "b", "a"]
    assert df["timestamp"].dtype == np.int64 and list(df["timestamp"]) == [100, 200, 400]
    assert df["click"].dtype == np.int64 and list(df["click"]) == [1, 0, 1]
    assert df["like"].dtype == np.int64
    assert df["rating"].dtype == np.float64 and np.isnan(df["rating"].iloc[1])
    assert df["watch_ratio"].iloc[0] == 0.5
    assert list(df["device"]) == ["phone", "tv", "tv"]  # extra columns are kept


def test_load_interactions_parquet_without_catalog(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": [10, 11],
            "timestamp": pd.to_datetime(["1970-01-01 00:01:40", "2001-09-09 01:46:40"]),
        }
    ).to_parquet(path)
    df = readers.load_interactions(path)
    assert list(df["user_id"]) == ["1", "2"] and list(df["item_id"]) == ["10", "11"]
    assert list(df["timestamp"]) == [100, 1_000_000_000]
    assert df.attrs["dropped_unknown_items"] == 0


# ------------------------------------------------------------------------- errors
def test_missing_column_errors_name_file_and_column(tmp_path: Path) -> None:
    bad_ratings = RATINGS_CSV.replace("movieId", "movie")
    with pytest.raises(ValueError) as exc:
        readers.load_movielens(write_ml_small(tmp_path / "a", ratings=bad_ratings))
    assert str(exc.value) == "ratings.csv: missing required column 'movieId'"

    bad_movies = MOVIES_CSV.replace(",genres", ",kinds")
    with pytest.raises(ValueError) as exc:
        readers.load_movielens(write_ml_small(tmp_path / "b", movies=bad_movies))
    assert str(exc.value) == "movies.csv: missing required column 'genres'"

    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n1,A\n")
    with pytest.raises(ValueError) as exc:
        readers.load_items(items)
    assert str(exc.value) == "items.csv: missing required column 'topic'"

    pq = tmp_path / "catalog.parquet"
    pd.DataFrame({"item_id": ["1"], "topic": ["x"]}).to_parquet(pq)
    with pytest.raises(ValueError) as exc:
        readers.load_items(pq)
    assert str(exc.value) == "catalog.parquet: missing required column 'title'"

    log = tmp_path / "events.csv"
    log.write_text("user_id,item_id\n1,2\n")
    with pytest.raises(ValueError) as exc:
        readers.load_interactions(log)
    assert str(exc.value) == "events.csv: missing required column 'timestamp'"


def test_missing_and_incomplete_movielens_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as exc:
        readers.load_movielens(tmp_path / "nope")
    assert_one_line(exc, "nope")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError) as exc:
        readers.load_movielens(empty)
    assert str(exc.value) == (
        f"no MovieLens files in {empty} (expected movies.csv + ratings.csv or movies.dat + ratings.dat; "
        "for ML-100K's u.data, RecBole, KuaiRec or Amazon layouts use catalog.source 'dataset')"
    )

    half = tmp_path / "half"
    half.mkdir()
    (half / "movies.csv").write_text(MOVIES_CSV)
    with pytest.raises(ValueError) as exc:
        readers.load_movielens(half)
    assert_one_line(exc, "ratings.csv", "not found")

    with pytest.raises(FileNotFoundError) as exc:
        readers.load_items(tmp_path / "missing.csv")
    assert_one_line(exc, "missing.csv")


@pytest.mark.parametrize(
    ("name", "content", "parts"),
    [
        ("items.json", '{"a": 1}', ("items.json", "unsupported file type")),
        ("items.csv", "", ("items.csv", "empty file")),
        ("items.csv", "item_id,title,topic,quality\n1,A,x,high\n", ("items.csv", "'quality'", "row 0")),
        ("items.csv", "item_id,title,topic\n1,A,x\n1,B,y\n", ("items.csv", "duplicate item_id '1'")),
        ("items.parquet", "not parquet at all", ("items.parquet", "cannot read")),
    ],
)
def test_bad_items_files(tmp_path: Path, name: str, content: str, parts: tuple[str, ...]) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError) as exc:
        readers.load_items(path)
    assert_one_line(exc, *parts)


def test_bad_values_in_ratings_and_interactions(tmp_path: Path) -> None:
    bad = RATINGS_CSV.replace("1,1,4.0,964982703", "1,1,four,964982703")
    with pytest.raises(ValueError) as exc:
        readers.load_movielens(write_ml_small(tmp_path / "a", ratings=bad))
    assert_one_line(exc, "ratings.csv", "'rating'", "'four'", "row 0")

    folder = write_ml_1m(tmp_path / "b")
    (folder / "ratings.dat").write_text("1::1::5::978300760\n1::2::3\n")
    with pytest.raises(ValueError) as exc:
        readers.load_movielens(folder)
    assert_one_line(exc, "ratings.dat", "'timestamp'", "row 1")

    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp,click\n1,2,100,0.5\n")
    with pytest.raises(ValueError) as exc:
        readers.load_interactions(log)
    assert_one_line(exc, "log.csv", "'click'", "non-integer")

    log.write_text("user_id,item_id,timestamp\n,2,100\n")
    with pytest.raises(ValueError) as exc:
        readers.load_interactions(log)
    assert_one_line(exc, "log.csv", "'user_id'", "missing", "row 0")

    log.write_text("user_id,item_id,timestamp\n1,2,yesterday-ish\n")
    with pytest.raises(ValueError) as exc:
        readers.load_interactions(log)
    assert_one_line(exc, "log.csv", "'timestamp'")


def test_require_columns_helper() -> None:
    frame = pd.DataFrame({"a": [1], "b": [2]})
    readers.require_columns(frame, ("a", "b"), "f.csv")
    with pytest.raises(ValueError, match=r"^f\.csv: missing required column 'c'$"):
        readers.require_columns(frame, ("a", "c", "d"), "f.csv")


# ------------------------------------------------------------- RecBole atomic files
def test_read_atomic_types_columns(tmp_path: Path) -> None:
    inter = tmp_path / "toy.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t42\t4\t881250949\n8\t05\t\t881250950\n")
    item = tmp_path / "toy.item"
    item.write_text("item_id:token\tmovie_title:token_seq\tscores:float_seq\n42\tToy Story\t1 2.5\n")
    frame = readers.read_atomic(inter)
    assert list(frame.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert list(frame["item_id"]) == ["42", "05"]  # tokens keep leading zeros
    assert frame["rating"].iloc[0] == 4.0 and np.isnan(frame["rating"].iloc[1])
    items = readers.read_atomic(item)
    assert items["movie_title"].iloc[0] == ["Toy", "Story"] and items["scores"].iloc[0] == [1.0, 2.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "toy.inter: empty file"),
        ("user_id\titem_id:token\n1\t2\n", "toy.inter: header field 'user_id' is not 'name:type'"),
        ("user_id:token\trating:float\n1\tgood\n", "toy.inter: column 'rating' has a non-numeric value 'good' at row 0"),
        ("user_id:token\tuser_id:token\n1\t2\n", "toy.inter: header repeats a column name"),
    ],
)
def test_read_atomic_bad_files_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "toy.inter"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        readers.read_atomic(path)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
