/** The atlas bench's regl-scatterplot page, drawn with the Atlas page's settings. */
import createScatterplot from "regl-scatterplot";
import { loadPoints, reportFailure, watchFirstPaint } from "./harness.js";

const container = document.getElementById("map") as HTMLDivElement;
watchFirstPaint(container);
loadPoints()
  .then(async ({ x, y, categories, palette }) => {
    const canvas = document.createElement("canvas");
    canvas.style.width = "100%";
    canvas.style.height = "100%";
    container.append(canvas);
    const scatter = createScatterplot({
      canvas,
      width: "auto",
      height: "auto",
      pointSize: 1.5,
      opacity: 0.5,
      pointColor: palette,
      colorBy: "category",
      backgroundColor: "#ffffff",
    });
    await scatter.draw({ x, y, z: categories });
  })
  .catch(reportFailure);
