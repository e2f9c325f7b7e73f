/**
 * The atlas bench's deck.gl page: one ScatterplotLayer over binary attributes (positions and
 * colours as typed arrays, no object per point) in an orthographic view that pans and zooms.
 */
import { Deck, OrthographicView } from "@deck.gl/core";
import { ScatterplotLayer } from "@deck.gl/layers";
import { loadPoints, reportFailure, watchFirstPaint } from "./harness.js";

const container = document.getElementById("map") as HTMLDivElement;
watchFirstPaint(container);
loadPoints()
  .then(({ x, y, categories, palette, points }) => {
    const positions = new Float32Array(points.count * 2);
    const colours = new Uint8Array(points.count * 4);
    const rgba = palette.map((hex) =>
      [1, 3, 5].map((at) => Number.parseInt(hex.slice(at, at + 2), 16)),
    );
    for (let point = 0; point < points.count; point++) {
      positions[point * 2] = x[point] as number;
      // deck.gl's orthographic y grows downwards; regl-scatterplot's upwards.
      positions[point * 2 + 1] = -(y[point] as number);
      const colour = rgba[categories[point] as number] ?? [128, 128, 128];
      colours.set(colour, point * 4);
      colours[point * 4 + 3] = 128;
    }
    const side = Math.min(container.clientWidth, container.clientHeight);
    new Deck({
      parent: container,
      width: "100%",
      height: "100%",
      views: new OrthographicView({}),
      // Zoom 2^z pixels a unit: the [-1, 1] square fills the shorter side, as in the other pages.
      initialViewState: { target: [0, 0, 0], zoom: Math.log2(side / 2) },
      controller: true,
      layers: [
        new ScatterplotLayer({
          id: "points",
          data: {
            length: points.count,
            attributes: {
              getPosition: { value: positions, size: 2 },
              getFillColor: { value: colours, size: 4, normalized: true },
            },
          },
          radiusUnits: "pixels",
          getRadius: 0.75,
          stroked: false,
        }),
      ],
    });
  })
  .catch(reportFailure);
