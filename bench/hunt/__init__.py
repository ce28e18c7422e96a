"""``python -m bench.hunt``: the nemesis hunting for lost and duplicated acknowledged JetStream
writes on real nats-server releases (on demand, never in CI: it runs for as long as it is given).

Each release runs :mod:`bench.hunt.rounds` (a pytest module, so the plugin's cluster fixtures do
the work) for its share of the time; each round is a fresh 3-node cluster, an R3 stream written
one acknowledged write at a time, a seeded nemesis around the writes, and a check of every
acknowledged write.  Each round's result is one JSON line; the runner sums them up."""
