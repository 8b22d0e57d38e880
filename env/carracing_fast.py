"""FastCarRacing: gymnasium's CarRacing-v3 with the same frames, drawn ~2.7x faster.

Physics, track generation, rewards and episode ends are gymnasium's own
(subclass, nothing copied). Only the per-step "state_pixels" rendering is
changed, and only in ways that leave every pixel of the 96x96 observation
identical (tests/test_env_carracing_fast.py plays whole episodes side by side
with the stock env and compares every frame):

- Culling: the stock `_render_road` rotates, zooms and offsets all ~800 grass
  and road polygons in Python every frame to test each against the screen,
  and draws ~60 of them, of which ~25 reach the screen. Here NumPy first
  drops the polygons whose bounding circle misses the screen, then computes
  the rest's screen vertices exactly as the stock code does (same float64
  operations in the same order: env/carracing_drawing.py), keeps those the
  stock test draws whose bounding box meets the visible rows (a polygon
  outside them changes no pixel), and makes the stock gfxdraw calls for them,
  in the stock order.
- Car: the same pygame polygons as gymnasium's Car.draw, with Box2D's float32
  body transform and the screen transform reproduced in NumPy, all parts at once.
- Background: once the screen lies deep inside the playfield square (always,
  after the first second's zoom-in, unless the car is at the edge), the stock
  full-screen polygon equals a fill with the colour that polygon draws.
- No flipped copy: the stock frame is the 1000x800 surface flipped upside
  down, the dashboard drawn over its bottom, then smoothscaled to 96x96.
  smoothscale shrinks each row on its own and then the columns, so the rows
  are shrunk before the flip, and only the dashboard's rows are built as a
  flipped surface (see `_render`). Surfaces are kept, not made per frame.
- Font: created once (a new pygame Font renders its first text ~200x slower
  than an already used one, ~1 ms a frame), and the score's text is rendered
  again only when it changes.

What is left (docs/benchmarks.md) is mostly pygame's C drawing that pixel
identity requires: the anti-aliased and filled polygons, the smoothscale and
the fill, and gymnasium's physics.

Other render modes ("rgb_array", "human") go through gymnasium's `_render`,
which uses the culled `_render_road` as well.
"""

import math

import numpy as np
import pygame
from gymnasium.envs.box2d.car_racing import SCALE, STATE_H, STATE_W, WINDOW_H, WINDOW_W, ZOOM, CarRacing
from pygame import gfxdraw

from env.carracing_drawing import FIELD_POLYGON, GRASS_POLYGONS, CarDrawing, PolygonCull, screen_inside_field

# The dashboard's black panel covers the frame's bottom rows PANEL_TOP..H-1, every pixel; as the frame is the
# canvas flipped upside down, the canvas's first HIDDEN_ROWS rows are never seen.
PANEL_TOP = int(WINDOW_H - 5 * WINDOW_H / 40.0)
HIDDEN_ROWS = WINDOW_H - PANEL_TOP


class FastCarRacing(CarRacing):
    """CarRacing-v3 whose "state_pixels" frames are identical to gymnasium's and cheaper to draw."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cull = PolygonCull(np.zeros((0, 4, 2)))  # over GRASS_POLYGONS, then road_poly
        self.road_colors: list = []  # road_poly's colours: a tile's live array, or a kerb's fixed int list
        self.canvas: pygame.Surface | None = None  # drawn unflipped, as the stock self.surf before its flip
        self.flipped: pygame.Surface | None = None  # the stock frame's dashboard rows (the rows above are left stale)
        self.rows_shrunk: pygame.Surface | None = None  # the stock frame with its rows shrunk to 96 pixels (96x800)
        self.font: pygame.font.Font | None = None
        self.car_drawing: CarDrawing | None = None  # for self.car (a new Car each reset)
        self.score_text: tuple[str, pygame.Surface] | None = None  # (the dashboard's score label, its rendered text)
        self.background_fill: tuple | None = None  # (bg_color as given, mapped pixel value gfxdraw gives it)
        self.hidden_rows = 0  # HIDDEN_ROWS while drawing a state frame, whose canvas rows 0..HIDDEN_ROWS-1 are never seen

    def _create_track(self):
        created = super()._create_track()
        if created:
            self.cull = PolygonCull(GRASS_POLYGONS + [polygon for polygon, _ in self.road_poly])
            # The stock converts each colour with int() every frame; the kerbs' fixed tuples once here.
            self.road_colors = [color if isinstance(color, np.ndarray) else [int(c) for c in color] for _, color in self.road_poly]
        return created

    def _render_road(self, zoom, translation, angle):
        if screen_inside_field(zoom, translation, angle):
            self.surf.fill(self.background_pixel(), (0, self.hidden_rows, WINDOW_W, WINDOW_H - self.hidden_rows))
        else:
            self.surf.fill(0)  # a fresh stock surface is black (a no-op on the stock path's fresh surface)
            self._draw_colored_polygon(self.surf, FIELD_POLYGON, self.bg_color, zoom, translation, angle, clip=False)
        # The stock drawing calls, in the stock order (grass, then road), for the polygons the cull keeps.
        grass_count = len(GRASS_POLYGONS)
        for index, screen_vertices in zip(*self.cull.screen_polygons(zoom, translation, angle, self.hidden_rows), strict=True):
            if index < grass_count:
                color = self.grass_color
            else:
                color = self.road_colors[index - grass_count]
                if type(color) is not list:  # a tile's live colour array (it changes when the car first touches the tile)
                    color = [int(c) for c in color.tolist()]
            gfxdraw.aapolygon(self.surf, screen_vertices, color)
            gfxdraw.filled_polygon(self.surf, screen_vertices, color)

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
        if self.car_drawing is None or self.car_drawing.car is not self.car:
            self.car_drawing = CarDrawing(self.car)
        self.car_drawing.draw(self.surf, zoom, trans, angle)

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
        label = f"{self.reward:04.0f}"
        if self.score_text is None or self.score_text[0] != label:  # the label changes about every tenth step
            self.score_text = (label, self.font.render(label, True, (255, 255, 255), (0, 0, 0)))
        text_rect = self.score_text[1].get_rect()
        text_rect.center = (60, WINDOW_H - WINDOW_H * 2.5 / 40.0)
        self.surf.blit(self.score_text[1], text_rect)

        rows_pixels = pygame.surfarray.pixels2d(self.rows_shrunk)
        if top > 0:
            upper = pygame.transform.smoothscale(self.canvas.subsurface((0, WINDOW_H - top, WINDOW_W, top)), (STATE_W, top))
            rows_pixels[:, :top] = pygame.surfarray.pixels2d(upper)[:, ::-1]
        lower = pygame.transform.smoothscale(self.flipped.subsurface((0, top, WINDOW_W, WINDOW_H - top)), (STATE_W, WINDOW_H - top))
        rows_pixels[:, top:] = pygame.surfarray.pixels2d(lower)
        del rows_pixels
        # The stock _create_image_array's column shrink; its pixels read row by row into (96, 96, 3) (the stock
        # copies a transposed view of the same values, ~3x slower).
        frame = pygame.transform.smoothscale(self.rows_shrunk, (STATE_W, STATE_H))
        return np.frombuffer(bytearray(pygame.image.tobytes(frame, "RGB")), dtype=np.uint8).reshape(STATE_H, STATE_W, 3)
