"""Contact search (contacts.list_contacts) on each database's index: FTS5 trigram on SQLite
(migration 0009, kept by triggers), pg_trgm GIN on PostgreSQL; words shorter than a trigram
fall back to LIKE. Runs on both databases (TEST_DATABASE_URL)."""

import sqlalchemy as sa

from onboarding_app import contacts

from .conftest import ON_POSTGRES


def _names(session, q: str, **filters) -> list[str]:
    return sorted(c.name for c in contacts.list_contacts(session, q=q, **filters).items)


def test_long_and_short_words_in_any_order_with_accents(make, session):
    make.contact("LEAD", name="Ada Lovelace", email="ada@example.com")
    make.contact("QUALIFIED", name="Ada Byron", email="byron@example.com")
    make.contact("LEAD", name="Zoë Åström", email="zo@firma.example")
    assert _names(session, "e ada") == ["Ada Byron", "Ada Lovelace"]  # "e": in both emails
    assert _names(session, "ada b") == ["Ada Byron"]
    assert _names(session, "by ADA") == ["Ada Byron"]  # a short word and a long one
    assert _names(session, "zo") == ["Zoë Åström"]  # short words alone: LIKE
    assert _names(session, "STRÖ zoë") == ["Zoë Åström"]
    assert _names(session, "ada", status="QUALIFIED") == ["Ada Byron"]
    assert contacts.list_contacts(session, q="lace ada").total == 1
    # Characters the index's query syntax gives a meaning to are plain text here.
    for q in ['o"neil', "ada*", "ada OR byron", "(ada)", "ada:", "NEAR(ada byron)", "-ada", "^ada"]:
        assert contacts.list_contacts(session, q=q).total == 0, q


def test_the_index_follows_edits_deletes_and_raw_inserts(make, session):
    contact_id = make.contact("LEAD", name="Grace Hopper", email="grace@example.com")
    contacts.update_contact(session, contact_id, {"name": "Grace Brewster"})
    assert _names(session, "hopper") == []
    assert _names(session, "brewster grace") == ["Grace Brewster"]
    contacts.delete_contact(session, contact_id)
    assert _names(session, "brewster") == []

    # A bulk load that bypasses the models (benchmarks/build.py) is indexed by the triggers too.
    session.execute(sa.text(
        "INSERT INTO contacts (name, email, company, phone, role, status, search_text, status_changed_at, "
        "created_at, updated_at) VALUES ('Raw Row', 'raw@example.com', '', '', 'client', 'LEAD', "
        "'raw row raw@example.com', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    session.commit()
    assert _names(session, "row raw@") == ["Raw Row"]
    if not ON_POSTGRES:
        session.execute(sa.text("INSERT INTO contacts_fts (contacts_fts, rank) VALUES ('integrity-check', 1)"))


def test_search_reads_the_index(make, session):
    make.contact("LEAD", name="Ada Lovelace", email="ada@example.com")
    page_query = contacts.search_conditions(session, ["lovelace", "ada"])
    statement = sa.select(sa.literal(1)).select_from(contacts.Contact).where(*page_query)
    compiled = statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    if ON_POSTGRES:
        session.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table is otherwise scanned
        plan = "\n".join(session.execute(sa.text(f"EXPLAIN {compiled}")).scalars())
        assert "ix_contacts_search" in plan
    else:
        plan = "\n".join(str(row[-1]) for row in session.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}")))
        assert "VIRTUAL TABLE INDEX" in plan and "contacts_fts" in plan
        assert "LIKE" not in str(compiled)  # both words are trigram lookups


def test_search_totals_over_pages(make, session):
    """A first page that is not full holds every match (no count is run); a full one, or any
    later page, counts them."""
    for i in range(5):
        make.contact("LEAD", name=f"Ada Number{i}", email=f"ada{i}@example.com")
    make.contact("LEAD", name="Grace Hopper", email="grace@example.com")
    for per_page, page, items, total in [(10, 1, 5, 5), (5, 1, 5, 5), (2, 1, 2, 5), (2, 3, 1, 5), (2, 4, 0, 5)]:
        found = contacts.list_contacts(session, q="ada", per_page=per_page, page=page)
        assert (len(found.items), found.total) == (items, total), (per_page, page)
    assert contacts.list_contacts(session, q="nobody").total == 0
