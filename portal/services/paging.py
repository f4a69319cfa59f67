"""Page numbers from a query string, bounded: a page far past any real list would only make
the database compute an offset too large for its integer type (a 500 on PostgreSQL)."""

# No list in the portal is anywhere near this many pages; past it, the last allowed page.
MAX_PAGE = 10_000


def clamp_page(page: int | None) -> int:
    """1..MAX_PAGE: nothing, zero or negative is the first page, a huge number the last."""
    return min(max(1, page or 1), MAX_PAGE)
