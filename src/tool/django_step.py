# pgsnapdiff's Django step: move the database exactly one migration down, run by
# `python manage.py shell -c "$PGSNAPDIFF_DJANGO_STEP"` against the throwaway database.
#
# Which migration: with PGSNAPDIFF_DJANGO_APP set, that app's latest applied migration;
# otherwise the migration applied last (highest django_migrations id) that nothing applied
# depends on. Its target is its parent within the same app (or `zero`). The plan, naming every
# migration of every app Django will unapply (dependents in other apps included), is printed
# before anything runs; then Django's own `migrate APP TARGET` does the work.
import os
import sys

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder


def fail(message):
    sys.stderr.write("pgsnapdiff django step: " + message + "\n")
    sys.exit(3)


connection = connections[DEFAULT_DB_ALIAS]
executor = MigrationExecutor(connection)
graph = executor.loader.graph
applied = executor.loader.applied_migrations
app = os.environ.get("PGSNAPDIFF_DJANGO_APP") or None


def applied_children(key):
    return [c.key for c in graph.node_map[key].children if c.key in applied]


if app is not None:
    if app not in executor.loader.migrated_apps:
        fail("no app %r with migrations in this project" % app)
    # The app's applied migrations that no applied migration of the same app follows.
    leaves = [
        k
        for k in graph.nodes
        if k[0] == app
        and k in applied
        and not [c for c in applied_children(k) if c[0] == app]
    ]
    if not leaves:
        fail("app %r has no applied migration: nothing to move down" % app)
    if len(leaves) > 1:
        fail("app %r has several applied leaves (%s): merge them first" % (app, ", ".join(n for _, n in leaves)))
    key = leaves[0]
else:
    recorded = MigrationRecorder(connection).migration_qs.order_by("-id").values_list("app", "name")
    key = None
    for row in recorded:
        row = tuple(row)
        if row in graph.nodes and not applied_children(row):
            key = row
            break
    if key is None:
        fail("no applied migration found in django_migrations: nothing to move down")

parents = [p.key for p in graph.node_map[key].parents if p.key[0] == key[0]]
target = parents[0][1] if parents else "zero"
plan = executor.migration_plan([(key[0], None if target == "zero" else target)])
unapplied = [m for m, backwards in plan if backwards]
apps = sorted({m.app_label for m in unapplied})
print("pgsnapdiff: migrate %s %s unapplies %d migration(s) in %s: %s" % (
    key[0], target, len(unapplied), ", ".join(apps),
    ", ".join("%s.%s" % (m.app_label, m.name) for m in unapplied)))
sys.stdout.flush()
call_command("migrate", key[0], target, interactive=False, verbosity=1)
