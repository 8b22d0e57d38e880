"""The stock CarRacing-v3 drawing geometry, computed in NumPy and equal to the last bit (env/carracing_fast.py).

gymnasium's renderer moves every vertex through pygame's Vector2.rotate_rad,
a zoom and an offset, one Python call at a time. For a general angle,
rotate_rad is cos(a) x - sin(a) y, sin(a) x + cos(a) y with a = angle mod 2 pi
in float64, and NumPy's elementwise products and sums in the same order round
exactly alike, so the screen vertices below are the stock ones, bit for bit.
(A transform in another order, or as one rotation matrix scaled by the zoom,
rounds differently and changes some frames.) Near right angles, where
rotate_rad switches to exact quarter turns, the stock per-vertex code runs.
"""

import math

import numpy as np
import pygame
from gymnasium.envs.box2d.car_dynamics import SIZE, WHEEL_R, WHEEL_W, WHEEL_WHITE
from gymnasium.envs.box2d.car_racing import GRASS_DIM, MAX_SHAPE_DIM, PLAYFIELD, WINDOW_H, WINDOW_W

# Pixels a polygon's bounding box may miss the screen by and still be drawn: gfxdraw
# truncates vertices to whole pixels and its anti-aliased edges reach one pixel
# further. (The first, bounding-circle test rotates with cos(angle) * zoom, which
# differs from the stock vertices by ~480 world units * 16.2 px/unit * 2e-6 ~ 0.02 px.)
CULL_MARGIN = 4.0
# Pixels by which the playfield must overhang every screen edge before the
# background polygon is replaced by a fill (gfxdraw rounds vertices to whole
# pixels and anti-aliases edges one pixel wide).
FILL_MARGIN = 8.0
# The stock grass patches: a checkerboard of GRASS_DIM squares over the field.
GRASS_POLYGONS = [
    [
        (GRASS_DIM * x + GRASS_DIM, GRASS_DIM * y + 0),
        (GRASS_DIM * x + 0, GRASS_DIM * y + 0),
        (GRASS_DIM * x + 0, GRASS_DIM * y + GRASS_DIM),
        (GRASS_DIM * x + GRASS_DIM, GRASS_DIM * y + GRASS_DIM),
    ]
    for x in range(-20, 20, 2)
    for y in range(-20, 20, 2)
]
# The stock draws a polygon when some vertex has -MAX_SHAPE_DIM <= x <= W + MAX_SHAPE_DIM and likewise y; shaped (x or y, 1, 1).
STOCK_DRAW_LIMITS = np.array([WINDOW_W + MAX_SHAPE_DIM, WINDOW_H + MAX_SHAPE_DIM]).reshape(2, 1, 1)
FIELD_POLYGON = [(PLAYFIELD, PLAYFIELD), (PLAYFIELD, -PLAYFIELD), (-PLAYFIELD, -PLAYFIELD), (-PLAYFIELD, PLAYFIELD)]


def turn_of(angle: float) -> float:
    """angle reduced to [0, 2 pi) as rotate_rad reduces it (C fmod, then + 2 pi if negative)."""
    turn = math.fmod(angle, 2 * math.pi)
    return turn + 2 * math.pi if turn < 0 else turn


def rotation_is_general(angle: float) -> bool:
    """False within 1e-5 rad of a right angle, where rotate_rad switches to exact quarter turns (below 1e-6 rad)."""
    return math.fmod(turn_of(angle) + 1e-5, math.pi / 2) >= 2e-5


def stock_screen_points(world_x: np.ndarray, world_y: np.ndarray, zoom: float, translation, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Screen x, y of world points, equal to the last bit to the stock Vector2(p).rotate_rad(angle) * zoom + translation
    when rotation_is_general(angle): the same float64 operations in the same order."""
    turn = turn_of(angle)
    cos, sin = math.cos(turn), math.sin(turn)
    return (cos * world_x - sin * world_y) * zoom + translation[0], (sin * world_x + cos * world_y) * zoom + translation[1]


class PolygonCull:
    """The screen vertices of those polygons, from a fixed list (N, 4, 2), that the stock code draws and that
    may change a pixel of the screen under a camera.

    Screen position of a vertex p: R(angle) p * zoom + translation. gfxdraw
    truncates vertices to whole pixels and anti-aliases one pixel beyond them,
    so a polygon whose bounding box misses the screen by CULL_MARGIN draws
    nothing on it, whether or not the stock test would have drawn it.
    First a cheap test of each polygon's bounding circle, then, for the few
    left, the vertices exactly as the stock code computes them (NumPy's
    float64 products and sums in the order pygame's rotate_rad and the stock
    transform use, so equal to the last bit), their bounding box, and the stock
    test (some vertex within MAX_SHAPE_DIM of the window).
    """

    def __init__(self, vertices: np.ndarray):
        self.vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 4, 2)
        self.vertex_lists = self.vertices.tolist()  # for the stock rotate_rad near right angles
        centers = self.vertices.mean(axis=1)
        self.centers_x, self.centers_y = np.ascontiguousarray(centers[:, 0]), np.ascontiguousarray(centers[:, 1])
        self.radii = np.sqrt(((self.vertices - centers[:, None, :]) ** 2).sum(axis=2)).max(axis=1)

    def screen_polygons(self, zoom: float, translation, angle: float, first_row: int = 0) -> tuple[list, list]:
        """(indices ascending, their screen vertices as lists of (x, y)) of the polygons the stock code draws
        that may change a pixel of the screen's rows first_row..H-1."""
        cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
        middle_x, middle_y = WINDOW_W / 2, (first_row + WINDOW_H) / 2
        # |center - middle of the rows| - radius, per axis, against half the rows' size plus the margin.
        reach = self.radii * zoom
        x = self.centers_x * cos
        x -= self.centers_y * sin
        x += translation[0] - middle_x
        np.abs(x, out=x)
        x -= reach
        y = self.centers_x * sin
        y += self.centers_y * cos
        y += translation[1] - middle_y
        np.abs(y, out=y)
        y -= reach
        candidates = np.flatnonzero((x <= middle_x + CULL_MARGIN) & (y <= WINDOW_H - middle_y + CULL_MARGIN))
        screen = np.stack(self.stock_transform(candidates, zoom, translation, angle))  # (x or y, polygon, vertex)
        low, high = screen.min(axis=2), screen.max(axis=2)
        box_meets_rows = ((high >= ((-CULL_MARGIN,), (first_row - CULL_MARGIN,))) & (low <= ((WINDOW_W + CULL_MARGIN,), (WINDOW_H + CULL_MARGIN,)))).all(axis=0)
        # The stock test: some vertex inside the window widened by MAX_SHAPE_DIM.
        stock_draws = ((screen >= -MAX_SHAPE_DIM) & (screen <= STOCK_DRAW_LIMITS)).all(axis=0).any(axis=1)
        kept = box_meets_rows & stock_draws
        return candidates[kept].tolist(), screen[:, kept].transpose(1, 2, 0).tolist()

    def stock_transform(self, indices: np.ndarray, zoom: float, translation, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Screen x, y (len(indices), 4) of the polygons, equal to the stock Vector2(p).rotate_rad(angle) * zoom + translation."""
        if rotation_is_general(angle):
            return stock_screen_points(self.vertices[indices, :, 0], self.vertices[indices, :, 1], zoom, translation, angle)
        rotated = [[pygame.math.Vector2(point).rotate_rad(angle) for point in self.vertex_lists[index]] for index in indices.tolist()]
        screen = np.array([[(point[0] * zoom + translation[0], point[1] * zoom + translation[1]) for point in polygon] for polygon in rotated])
        screen = screen.reshape(len(indices), 4, 2)
        return screen[..., 0], screen[..., 1]


class CarDrawing:
    """gymnasium's Car.draw without particles: the same polygons, colours and order, with the vertex arithmetic
    done in NumPy for all of the car's parts at once.

    A part's world vertex is Box2D's b2Mul(transform, v), in float32:
    (c v.x - s v.y) + p.x, (s v.x + c v.y) + p.y, which NumPy's float32
    products and sums reproduce; the screen transform is stock_screen_points.
    Near right angles the stock Car.draw runs instead.
    """

    def __init__(self, car):
        self.car = car
        self.shapes = [[list(fixture.shape.vertices) for fixture in part.fixtures] for part in car.drawlist]

    def draw(self, surface: pygame.Surface, zoom: float, translation, angle: float) -> None:
        if not rotation_is_general(angle):
            self.car.draw(surface, zoom, translation, angle, False)
            return
        for color, points in self.screen_polygons(zoom, translation, angle):
            pygame.draw.polygon(surface, color=color, points=points)

    def screen_polygons(self, zoom: float, translation, angle: float) -> list[tuple[list, list]]:
        """(colour, screen vertices) of each polygon Car.draw draws, in its order, for a general angle."""
        local, frames, pieces = [], [], []  # local vertices, their part's (c, s, p.x, p.y), (colour, vertex count)
        for part, shapes in zip(self.car.drawlist, self.shapes, strict=True):
            transform = part.transform
            position = transform.position
            frame = (transform.q.c, transform.q.s, position[0], position[1])
            color = [int(c * 255) for c in part.color]
            for vertices in shapes:
                local += vertices
                frames += [frame] * len(vertices)
                pieces.append((color, len(vertices)))
                if "phase" not in part.__dict__:
                    continue
                # The stock white stripe across a wheel, from its phase.
                s1, s2 = math.sin(part.phase), math.sin(part.phase + 1.2)
                c1, c2 = math.cos(part.phase), math.cos(part.phase + 1.2)
                if s1 > 0 and s2 > 0:
                    continue
                if s1 > 0:
                    c1 = np.sign(c1)
                if s2 > 0:
                    c2 = np.sign(c2)
                local += [
                    (-WHEEL_W * SIZE, +WHEEL_R * c1 * SIZE),
                    (+WHEEL_W * SIZE, +WHEEL_R * c1 * SIZE),
                    (+WHEEL_W * SIZE, +WHEEL_R * c2 * SIZE),
                    (-WHEEL_W * SIZE, +WHEEL_R * c2 * SIZE),
                ]
                frames += [frame] * 4
                pieces.append((WHEEL_WHITE, 4))
        local, frames = np.array(local, dtype=np.float32), np.array(frames, dtype=np.float32)
        world_x = (frames[:, 0] * local[:, 0] - frames[:, 1] * local[:, 1]) + frames[:, 2]
        world_y = (frames[:, 1] * local[:, 0] + frames[:, 0] * local[:, 1]) + frames[:, 3]
        x, y = stock_screen_points(world_x.astype(np.float64), world_y.astype(np.float64), zoom, translation, angle)
        points = np.stack((x, y), axis=-1).tolist()
        polygons, start = [], 0
        for color, count in pieces:
            polygons.append((color, points[start : start + count]))
            start += count
        return polygons


def screen_inside_field(zoom: float, translation, angle: float) -> bool:
    """True when the screen, widened by FILL_MARGIN, lies inside the playfield square (so its polygon covers every pixel)."""
    # World position of a screen point q: R(-angle) (q - translation) / zoom.
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    limit = PLAYFIELD - FILL_MARGIN / zoom
    for corner_x in (-FILL_MARGIN, WINDOW_W + FILL_MARGIN):
        for corner_y in (-FILL_MARGIN, WINDOW_H + FILL_MARGIN):
            dx, dy = corner_x - translation[0], corner_y - translation[1]
            if abs(dx * cos + dy * sin) >= limit or abs(-dx * sin + dy * cos) >= limit:
                return False
    return True
