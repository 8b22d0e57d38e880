"""env/carracing_drawing.py: the stock CarRacing-v3 geometry in NumPy, equal to pygame's and Box2D's to the last bit."""

import math

import numpy as np
import pygame
import pytest
from gymnasium.envs.box2d.car_racing import MAX_SHAPE_DIM, WINDOW_H, WINDOW_W

from env.carracing import make_gym_carracing
from env.carracing_drawing import GRASS_POLYGONS, CarDrawing, PolygonCull, rotation_is_general, stock_screen_points


def stock_points(points, zoom, translation, angle) -> np.ndarray:
    """The stock per-vertex code of CarRacing's _draw_colored_polygon and Car.draw."""
    rotated = [pygame.math.Vector2(point).rotate_rad(angle) for point in points]
    return np.array([(point[0] * zoom + translation[0], point[1] * zoom + translation[1]) for point in rotated])


def test_screen_points_equal_pygames_rotation_to_the_last_bit():
    rng = np.random.default_rng(0)
    points = rng.uniform(-400, 400, size=(500, 2))
    for _ in range(200):
        angle, zoom = float(rng.uniform(-40, 40)), float(rng.uniform(0.5, 20))
        translation = tuple(rng.uniform(-5000, 5000, size=2).tolist())
        assert rotation_is_general(angle)
        x, y = stock_screen_points(points[:, 0], points[:, 1], zoom, translation, angle)
        expected = stock_points(points.tolist(), zoom, translation, angle)
        assert np.array_equal(x, expected[:, 0]) and np.array_equal(y, expected[:, 1]), angle
    # A rotation matrix scaled by the zoom, the obvious vectorisation, rounds differently: the test can tell.
    angle, zoom, translation = 0.7, 16.2, (500.25, 200.75)
    cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
    naive_x = cos * points[:, 0] - sin * points[:, 1] + translation[0]
    assert not np.array_equal(naive_x, stock_points(points.tolist(), zoom, translation, angle)[:, 0])


@pytest.mark.parametrize("angle", [0.0, math.pi / 2, -math.pi, 3 * math.pi / 2 + 3e-7, 2 * math.pi - 5e-6, 1e-5 + 1e-9])
def test_near_right_angles_the_stock_rotation_is_used(angle):
    """rotate_rad snaps angles within 1e-6 rad of a quarter turn; those (and a band around them) take the stock path."""
    assert rotation_is_general(angle) is (angle == 1e-5 + 1e-9)
    cull = PolygonCull(GRASS_POLYGONS)
    indices = np.arange(0, len(GRASS_POLYGONS), 7)
    x, y = cull.stock_transform(indices, 16.2, (500.0, 200.0), angle)
    for row, index in enumerate(indices.tolist()):
        expected = stock_points(GRASS_POLYGONS[index], 16.2, (500.0, 200.0), angle)
        assert np.array_equal(x[row], expected[:, 0]) and np.array_equal(y[row], expected[:, 1])


def test_the_cull_keeps_exactly_the_polygons_that_draw_on_the_visible_rows():
    """Every polygon the stock test draws and whose pixels reach rows 100..799 is kept, with the stock vertices;
    the ones dropped draw nothing there."""
    cull = PolygonCull(GRASS_POLYGONS)
    probe = pygame.Surface((WINDOW_W, WINDOW_H))
    rng = np.random.default_rng(1)
    for _ in range(6):
        zoom, angle = float(rng.uniform(2, 16.2)), float(rng.uniform(-math.pi, math.pi))
        translation = tuple(rng.uniform(-3000, 3000, size=2).tolist())
        kept, vertices = cull.screen_polygons(zoom, translation, angle, first_row=100)
        assert kept == sorted(kept)
        for index, polygon in enumerate(GRASS_POLYGONS):
            points = stock_points(polygon, zoom, translation, angle)
            stock_draws = any(-MAX_SHAPE_DIM <= x <= WINDOW_W + MAX_SHAPE_DIM and -MAX_SHAPE_DIM <= y <= WINDOW_H + MAX_SHAPE_DIM for x, y in points)
            probe.fill(0)
            pygame.gfxdraw.aapolygon(probe, points.tolist(), (255, 255, 255))
            pygame.gfxdraw.filled_polygon(probe, points.tolist(), (255, 255, 255))
            reaches_rows = pygame.surfarray.pixels2d(probe)[:, 100:].any()
            if index in kept:
                assert stock_draws and vertices[kept.index(index)] == points.tolist()
            else:
                assert not (stock_draws and reaches_rows), index


def stock_car_vertices(car, zoom, translation, angle) -> list:
    """Car.draw's vertices: Box2D's transform of each fixture's (and each shown white stripe's) vertices, then the screen's."""
    polygons = []
    for part in car.drawlist:
        for fixture in part.fixtures:
            transform = fixture.body.transform
            polygons.append(stock_points([tuple(transform * vertex) for vertex in fixture.shape.vertices], zoom, translation, angle).tolist())
            if "phase" in part.__dict__ and not (math.sin(part.phase) > 0 and math.sin(part.phase + 1.2) > 0):
                polygons.append(None)  # the stripe: its vertices are checked through the pixels
    return polygons


def test_the_car_is_drawn_as_gymnasium_draws_it():
    """Same vertices (Box2D's float32 transform, to the last bit) and the same pixels as Car.draw(draw_particles=False),
    through wheel phases that hide and show the white stripes, at a general angle and at a right angle (the stock path)."""
    env = make_gym_carracing("stock")
    try:
        env.reset(seed=2)
        car = env.unwrapped.car
        drawing = CarDrawing(car)
        stock_surface, our_surface = pygame.Surface((WINDOW_W, WINDOW_H)), pygame.Surface((WINDOW_W, WINDOW_H))
        for step in range(40):
            env.step(np.array([0.5, 1.0, 0.0], np.float32))
            for wheel_number, wheel in enumerate(car.wheels):
                wheel.phase = step * 0.37 + wheel_number  # every branch of the stripe's rule in 40 steps
            for angle in (-car.hull.angle, math.pi / 2):
                # The camera as the stock _render places it: the car at (W / 2, H / 4).
                scroll = pygame.math.Vector2(-car.hull.position[0] * 16.2, -car.hull.position[1] * 16.2).rotate_rad(angle)
                translation = (WINDOW_W / 2 + scroll[0], WINDOW_H / 4 + scroll[1])
                stock_surface.fill((128, 128, 128))  # grey, so the black wheels show
                our_surface.fill((128, 128, 128))
                car.draw(stock_surface, 16.2, translation, angle, False)
                drawing.draw(our_surface, 16.2, translation, angle)
                stock_pixels = pygame.surfarray.array2d(stock_surface)
                if rotation_is_general(angle):
                    ours = [points for _, points in drawing.screen_polygons(16.2, translation, angle)]
                    stock = stock_car_vertices(car, 16.2, translation, angle)
                    assert len(ours) == len(stock) and all(theirs is None or theirs == mine for theirs, mine in zip(stock, ours, strict=True))
                assert (stock_pixels != stock_pixels[0, 0]).sum() > 500 and np.array_equal(pygame.surfarray.array2d(our_surface), stock_pixels), (step, angle)
    finally:
        env.close()
