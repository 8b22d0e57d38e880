"""FastCarRacing: gymnasium's CarRacing-v3 with the same frames, drawn ~2.5x faster.

Physics, track generation, rewards and episode ends are gymnasium's own
(subclass, nothing copied). Only the per-step "state_pixels" rendering is
changed, and only in ways that leave every pixel of the 96x96 observation
identical (tests/test_env_carracing_fast.py plays whole episodes side by side
with the stock env and compares every frame):

- Culling: the stock `_render_road` rotates, zooms and offsets all ~800 grass
  and road polygons in Python every frame to test each against the screen,
  and draws ~60 of them, of which ~25 reach the screen. Here NumPy first
  drops the polygons whose bounding box misses the screen by CULL_MARGIN
  pixels (such a polygon changes no pixel, drawn or not), and the rest go
  through the stock per-polygon code, in the stock order, which transforms,
  tests and draws them exactly as before. (Drawing with a vectorised
  transform instead would round differently and change some frames.)
- Background: once the screen lies deep inside the playfield square (always,
  after the first second's zoom-in, unless the car is at the edge), the stock
  full-screen polygon equals a fill with the colour that polygon draws.
- No flipped copy: the stock frame is the 1000x800 surface flipped upside
  down, the dashboard drawn over its bottom, then smoothscaled to 96x96.
  smoothscale shrinks each row on its own and then the columns, so the rows
  are shrunk before the flip, and only the dashboard's rows are built as a
  flipped surface (see `_render`). Surfaces are kept, not made per frame.
- Font: created once (a new pygame Font renders its first text ~200x slower
  than an already used one, ~1 ms a frame).

Other render modes ("rgb_array", "human") go through gymnasium's `_render`,
which uses the culled `_render_road` as well.
"""

import math

import numpy as np
import pygame
from gymnasium.envs.box2d.car_racing import GRASS_DIM, PLAYFIELD, SCALE, STATE_H, STATE_W, WINDOW_H, WINDOW_W, ZOOM, CarRacing
from pygame import gfxdraw

# Pixels a polygon's bounding box may miss the screen by and still be drawn. gfxdraw
# truncates vertices to whole pixels and its anti-aliased edges reach one pixel
# further; NumPy's rotation differs from pygame's Vector2.rotate_rad (which
# special-cases angles within 1e-6 rad of a right angle) by at most
# ~480 world units * 16.2 px/unit * 2e-6 ~ 0.02 px.
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
# The dashboard's black panel covers the frame's bottom rows PANEL_TOP..H-1, every pixel; as the frame is the
# canvas flipped upside down, the canvas's first HIDDEN_ROWS rows are never seen.
PANEL_TOP = int(WINDOW_H - 5 * WINDOW_H / 40.0)
HIDDEN_ROWS = WINDOW_H - PANEL_TOP
FIELD_POLYGON = [(PLAYFIELD, PLAYFIELD), (PLAYFIELD, -PLAYFIELD), (-PLAYFIELD, -PLAYFIELD), (-PLAYFIELD, PLAYFIELD)]


class PolygonCull:
    """Which of a fixed list of world polygons (N, 4, 2) may change a pixel of the screen under a camera.

    Screen position of a vertex p: R(angle) p * zoom + translation. gfxdraw
    truncates vertices to whole pixels and anti-aliases one pixel beyond them,
    so a polygon whose bounding box misses the screen by CULL_MARGIN draws
    nothing on it, whether or not the stock test would have drawn it.
    First a cheap test of each polygon's bounding circle, then the bounding
    box of the few polygons left.
    """

    def __init__(self, vertices: np.ndarray):
        self.vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 4, 2)
        centers = self.vertices.mean(axis=1)
        self.centers_x, self.centers_y = np.ascontiguousarray(centers[:, 0]), np.ascontiguousarray(centers[:, 1])
        self.radii = np.sqrt(((self.vertices - centers[:, None, :]) ** 2).sum(axis=2)).max(axis=1)

    def visible(self, zoom: float, translation, angle: float, first_row: int = 0) -> np.ndarray:
        """Indices, ascending, of the polygons that may change a pixel of the screen's rows first_row..H-1."""
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
        vertices = self.vertices[candidates]
        x = vertices[..., 0] * cos - vertices[..., 1] * sin + translation[0]
        y = vertices[..., 0] * sin + vertices[..., 1] * cos + translation[1]
        box_meets_rows = (
            (x.max(axis=1) >= -CULL_MARGIN)
            & (x.min(axis=1) <= WINDOW_W + CULL_MARGIN)
            & (y.max(axis=1) >= first_row - CULL_MARGIN)
            & (y.min(axis=1) <= WINDOW_H + CULL_MARGIN)
        )
        return candidates[box_meets_rows]


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


class FastCarRacing(CarRacing):
    """CarRacing-v3 whose "state_pixels" frames are identical to gymnasium's and cheaper to draw."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cull = PolygonCull(np.zeros((0, 4, 2)))  # over GRASS_POLYGONS, then road_poly
        self.canvas: pygame.Surface | None = None  # drawn unflipped, as the stock self.surf before its flip
        self.flipped: pygame.Surface | None = None  # the stock frame's dashboard rows (the rows above are left stale)
        self.rows_shrunk: pygame.Surface | None = None  # the stock frame with its rows shrunk to 96 pixels (96x800)
        self.font: pygame.font.Font | None = None
        self.background_fill: tuple | None = None  # (bg_color as given, mapped pixel value gfxdraw gives it)
        self.hidden_rows = 0  # HIDDEN_ROWS while drawing a state frame, whose canvas rows 0..HIDDEN_ROWS-1 are never seen
        self.road_polygons: list = []  # road_poly's vertex lists as the stock _render_road converts them

    def _create_track(self):
        created = super()._create_track()
        if created:
            self.cull = PolygonCull(GRASS_POLYGONS + [polygon for polygon, _ in self.road_poly])
            self.road_polygons = [[(p[0], p[1]) for p in polygon] for polygon, _ in self.road_poly]
        return created

    def _render_road(self, zoom, translation, angle):
        if screen_inside_field(zoom, translation, angle):
            self.surf.fill(self.background_pixel(), (0, self.hidden_rows, WINDOW_W, WINDOW_H - self.hidden_rows))
        else:
            self.surf.fill(0)  # a fresh stock surface is black (a no-op on the stock path's fresh surface)
            self._draw_colored_polygon(self.surf, FIELD_POLYGON, self.bg_color, zoom, translation, angle, clip=False)
        # The stock per-polygon code, in the stock order (grass, then road), for the polygons the cull keeps.
        for index in self.cull.visible(zoom, translation, angle, self.hidden_rows).tolist():
            if index < len(GRASS_POLYGONS):
                self._draw_colored_polygon(self.surf, GRASS_POLYGONS[index], self.grass_color, zoom, translation, angle)
            else:
                index -= len(GRASS_POLYGONS)
                color = [int(c) for c in self.road_poly[index][1]]  # read each frame: a tile's colour changes when the car first touches it
                self._draw_colored_polygon(self.surf, self.road_polygons[index], color, zoom, translation, angle)

    def background_pixel(self) -> int:
        """The mapped pixel gfxdraw.filled_polygon writes for bg_color (found by drawing it once: no colour conversion of our own)."""
        key = tuple(np.asarray(self.bg_color).tolist())
        if self.background_fill is None or self.background_fill[0] != key:
            probe = pygame.Surface((1, 1))
            gfxdraw.filled_polygon(probe, [(-4, -4), (4, -4), (4, 4), (-4, 4)], self.bg_color)
            self.background_fill = (key, probe.get_at_mapped((0, 0)))
        return self.background_fill[1]

    def dashboard_top_row(self) -> int:
        """Highest row of the (flipped) frame the stock dashboard may draw on, less a safety row.

        Its black panel covers rows H - 5h .. H - 1 (h = H / 40) and the text
        and steering/gyro bars lie inside it; the speed and wheel bars rise from
        H - h by h * (0.02 * speed) and h * (0.01 * omega), so a fast car or a
        spinning wheel can reach above the panel.
        """
        h = WINDOW_H / 40.0
        velocity = self.car.hull.linearVelocity
        speed = math.sqrt(velocity[0] ** 2 + velocity[1] ** 2)
        tallest = max(0.02 * speed, *(0.01 * wheel.omega for wheel in self.car.wheels))
        return max(0, min(PANEL_TOP, math.floor(WINDOW_H - h * (1 + tallest)) - 2))

    def _render(self, mode: str):
        if mode != "state_pixels" or "t" not in self.__dict__:
            return super()._render(mode)
        if self.canvas is None:
            pygame.font.init()
            self.canvas = pygame.Surface((WINDOW_W, WINDOW_H))
            self.flipped = pygame.Surface((WINDOW_W, WINDOW_H))
            self.rows_shrunk = pygame.Surface((STATE_W, WINDOW_H))
            self.font = pygame.font.Font(pygame.font.get_default_font(), 42)

        # Camera, as the stock _render computes it.
        angle = -self.car.hull.angle
        zoom = 0.1 * SCALE * max(1 - self.t, 0) + ZOOM * SCALE * min(self.t, 1)
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        trans = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        trans = (WINDOW_W / 2 + trans[0], WINDOW_H / 4 + trans[1])

        self.surf = self.canvas
        self.hidden_rows = HIDDEN_ROWS
        self._render_road(zoom, trans, angle)
        self.hidden_rows = 0
        self.car.draw(self.surf, zoom, trans, angle, False)

        # The stock frame is smoothscale(F, 96x96) where F is the canvas flipped upside down with the dashboard
        # drawn over its bottom rows. smoothscale shrinks each row on its own (1000 -> 96) and then the columns
        # (800 -> 96), so F is never built: rows [0, top) of F are canvas rows shrunk and put in reverse order,
        # rows [top, 800) (where the dashboard draws) are made in `flipped` and drawn on by the stock code.
        top = self.dashboard_top_row()
        if top < PANEL_TOP:  # F's rows from PANEL_TOP down are the black panel's, every pixel: no canvas needed
            canvas_pixels, flipped_pixels = pygame.surfarray.pixels2d(self.canvas), pygame.surfarray.pixels2d(self.flipped)
            flipped_pixels[:, top:PANEL_TOP] = canvas_pixels[:, WINDOW_H - 1 - top : WINDOW_H - 1 - PANEL_TOP : -1]
            del canvas_pixels, flipped_pixels
        self.surf = self.flipped
        self._render_indicators(WINDOW_W, WINDOW_H)
        text = self.font.render(f"{self.reward:04.0f}", True, (255, 255, 255), (0, 0, 0))
        text_rect = text.get_rect()
        text_rect.center = (60, WINDOW_H - WINDOW_H * 2.5 / 40.0)
        self.surf.blit(text, text_rect)

        rows_pixels = pygame.surfarray.pixels2d(self.rows_shrunk)
        if top > 0:
            upper = pygame.transform.smoothscale(self.canvas.subsurface((0, WINDOW_H - top, WINDOW_W, top)), (STATE_W, top))
            rows_pixels[:, :top] = pygame.surfarray.pixels2d(upper)[:, ::-1]
        lower = pygame.transform.smoothscale(self.flipped.subsurface((0, top, WINDOW_W, WINDOW_H - top)), (STATE_W, WINDOW_H - top))
        rows_pixels[:, top:] = pygame.surfarray.pixels2d(lower)
        del rows_pixels
        return self._create_image_array(self.rows_shrunk, (STATE_W, STATE_H))  # the column shrink, then (96, 96, 3)
