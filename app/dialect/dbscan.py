"""DBSCAN in plain Python with a grid-bucket neighbour search, matching PostGIS ST_ClusterDBSCAN."""

from __future__ import annotations

import math
from collections import defaultdict, deque


def dbscan(points: list[tuple[float, float]], eps: float, min_points: int) -> list[int | None]:
    """Cluster number per point (None for noise), planar distances, neighbourhoods inclusive of eps.

    As in ST_ClusterDBSCAN, a point is a core point when at least min_points points (itself
    included) lie within eps; border points join the first cluster that reaches them. Buckets of
    side eps mean each point only compares with the 3 x 3 buckets around its own.
    """
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    keys = [(math.floor(x / eps), math.floor(y / eps)) for x, y in points]
    for i, key in enumerate(keys):
        buckets[key].append(i)
    eps2 = eps * eps

    def neighbours(i: int) -> list[int]:
        x, y = points[i]
        bx, by = keys[i]
        found = []
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for j in buckets.get((bx + dx, by + dy), ()):
                    px, py = points[j]
                    if (px - x) ** 2 + (py - y) ** 2 <= eps2:
                        found.append(j)
        return found

    labels: list[int | None] = [None] * len(points)
    seen = [False] * len(points)
    cluster = -1
    for i in range(len(points)):
        if seen[i]:
            continue
        seen[i] = True
        around = neighbours(i)
        if len(around) < min_points:
            continue
        cluster += 1
        labels[i] = cluster
        queue = deque(around)
        while queue:
            j = queue.popleft()
            if labels[j] is None:
                labels[j] = cluster
            if seen[j]:
                continue
            seen[j] = True
            more = neighbours(j)
            if len(more) >= min_points:
                queue.extend(more)
    return labels
