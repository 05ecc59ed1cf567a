"""The Numba cache directory is keyed by every source file of the kernels package."""

import numba

from kernels import compile_cache


def test_kernels_compile_into_the_keyed_directory():
    assert numba.config.CACHE_DIR == str(compile_cache.cache_dir())
    assert compile_cache.cache_dir().name == compile_cache.source_key()


def test_an_edit_in_any_module_changes_the_key(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "sub" / "b.py").write_text("def f(): return 1\n")
    monkeypatch.setattr(compile_cache, "PACKAGE", tmp_path)
    before = compile_cache.source_key()
    (tmp_path / "sub" / "b.py").write_text("def f(): return 2\n")
    assert compile_cache.source_key() != before
    (tmp_path / "sub" / "b.py").write_text("def f(): return 1\n")
    assert compile_cache.source_key() == before


def test_numba_cache_dir_is_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert compile_cache.cache_dir() == tmp_path / compile_cache.source_key()
