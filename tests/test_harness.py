import sniffio


async def test_runs_under_its_backend(backend: str) -> None:
    assert sniffio.current_async_library() == backend


def test_sync_tests_have_no_backend(backend: None) -> None:
    assert backend is None
