// HepaNav mesh viewer: flat-shaded triangles on a 2D canvas, painter's algorithm.
// Self-contained (no network, no WebGL needed); data from the sibling JSON script tag.
// Coordinates are LPS mm. Initial view: from anterior (patient's left on the right).
function hepanavMeshView(id) {
  var root = document.getElementById(id);
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  var canvas = root.querySelector("canvas");
  var ctx = canvas.getContext("2d");
  var data = JSON.parse(root.querySelector(".mv-data").textContent);
  var lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  data.layers.forEach(function (L) {
    for (var i = 0; i < L.vertices.length; i += 3)
      for (var a = 0; a < 3; a++) {
        lo[a] = Math.min(lo[a], L.vertices[i + a]); hi[a] = Math.max(hi[a], L.vertices[i + a]);
      }
  });
  var c = [0, 1, 2].map(function (a) { return (lo[a] + hi[a]) / 2; });
  var radius = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2 || 1;
  var yaw0 = 0, pitch0 = 0.0, yaw = yaw0, pitch = pitch0, zoom = 1.0;
  // Screen axes for yaw = pitch = 0: x = patient left (L), y(up) = superior, view from anterior.
  function rot(p) {
    var x = p[0] - c[0], y = p[1] - c[1], z = p[2] - c[2];
    // camera frame: X right = L, Y up = S, Z towards viewer = -P (anterior)
    var X = x, Y = z, Z = -y;
    var cy = Math.cos(yaw), sy = Math.sin(yaw);
    var X1 = cy * X + sy * Z, Z1 = -sy * X + cy * Z;
    var cp = Math.cos(pitch), sp = Math.sin(pitch);
    var Y2 = cp * Y - sp * Z1, Z2 = sp * Y + cp * Z1;
    return [X1, Y2, Z2];
  }
  function draw() {
    var w = canvas.width, h = canvas.height, s = zoom * 0.45 * Math.min(w, h) / radius;
    ctx.fillStyle = "#111"; ctx.fillRect(0, 0, w, h);
    var tris = [];
    data.layers.forEach(function (L) {
      var V = L.vertices, F = L.faces, C = L.colours, P = [];
      for (var i = 0; i < V.length; i += 3) P.push(rot([V[i], V[i + 1], V[i + 2]]));
      for (var f = 0; f < F.length; f += 3) {
        var a = P[F[f]], b = P[F[f + 1]], d = P[F[f + 2]];
        var ux = b[0] - a[0], uy = b[1] - a[1], uz = b[2] - a[2];
        var vx = d[0] - a[0], vy = d[1] - a[1], vz = d[2] - a[2];
        var nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
        var nn = Math.sqrt(nx * nx + ny * ny + nz * nz) || 1;
        var shade = 0.35 + 0.65 * Math.abs(nz / nn);
        tris.push({ z: (a[2] + b[2] + d[2]) / 3, p: [a, b, d], k: f, C: C, o: L.opacity, shade: shade });
      }
    });
    tris.sort(function (t1, t2) { return t1.z - t2.z; });
    tris.forEach(function (t) {
      var k = t.k;
      ctx.globalAlpha = t.o;
      ctx.fillStyle = "rgb(" + Math.round(t.C[k] * t.shade) + "," + Math.round(t.C[k + 1] * t.shade) + "," + Math.round(t.C[k + 2] * t.shade) + ")";
      ctx.beginPath();
      ctx.moveTo(w / 2 + s * t.p[0][0], h / 2 - s * t.p[0][1]);
      ctx.lineTo(w / 2 + s * t.p[1][0], h / 2 - s * t.p[1][1]);
      ctx.lineTo(w / 2 + s * t.p[2][0], h / 2 - s * t.p[2][1]);
      ctx.closePath(); ctx.fill();
      if (t.o >= 0.99) { ctx.strokeStyle = ctx.fillStyle; ctx.lineWidth = 0.6; ctx.stroke(); }
    });
    ctx.globalAlpha = 1.0;
    (data.markers || []).forEach(function (m) {
      var q = rot(m.p);
      ctx.beginPath(); ctx.arc(w / 2 + s * q[0], h / 2 - s * q[1], 6, 0, 2 * Math.PI);
      ctx.fillStyle = m.colour; ctx.fill(); ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5; ctx.stroke();
    });
    // orientation triad (patient axes) in the lower-left corner
    var axes = [[[1, 0, 0], "L", "#d55e00"], [[0, 1, 0], "P", "#009e73"], [[0, 0, 1], "S", "#56b4e9"]];
    axes.forEach(function (ax) {
      var q = rot([c[0] + ax[0][0], c[1] + ax[0][1], c[2] + ax[0][2]]);
      var x0 = 40, y0 = h - 40;
      ctx.strokeStyle = ax[2]; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(x0, y0);
      ctx.lineTo(x0 + 25 * q[0], y0 - 25 * q[1]); ctx.stroke();
      ctx.fillStyle = ax[2]; ctx.font = "bold 12px sans-serif";
      ctx.fillText(ax[1], x0 + 32 * q[0] - 4, y0 - 32 * q[1] + 4);
    });
  }
  var drag = null;
  canvas.addEventListener("mousedown", function (e) { drag = [e.clientX, e.clientY]; });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    yaw += (e.clientX - drag[0]) * 0.01; pitch += (e.clientY - drag[1]) * 0.01;
    pitch = Math.max(-1.55, Math.min(1.55, pitch)); drag = [e.clientX, e.clientY]; draw();
  });
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault(); zoom *= e.deltaY < 0 ? 1.1 : 1 / 1.1; draw();
  }, { passive: false });
  canvas.addEventListener("dblclick", function () { yaw = yaw0; pitch = pitch0; zoom = 1; draw(); });
  draw();
  root.dataset.drawn = "1";
}
