// HepaNav's small layer over NiiVue (served locally from /static/vendor).
// NiiVue works in RAS world millimetres; HepaNav's coordinates are LPS:
// x_LPS = -x_RAS, y_LPS = -y_RAS, z_LPS = z_RAS.
(function () {
  const CT_WINDOW = { cal_min: 40 - 200, cal_max: 40 + 200 }; // W 400 / L 40 HU
  const ras2lps = (m) => [-m[0], -m[1], m[2]];
  const lps2ras = (p) => [-p[0], -p[1], p[2]];
  const fmt = (p) => p ? p.map((v) => v.toFixed(1)).join(",") : "";

  // Scale bar. NiiVue's own option (opts.isRuler, in the bundled 0.69.0) draws one 10 cm
  // bar, unlabelled, under the first slice tile only, and once zoom makes it wider than the
  // canvas it is cut and its ten ticks no longer mark centimetres. HepaNav keeps that option
  // as the switch and NiiVue's bar drawing (drawRuler10cm: a bar with 10 ticks, long ticks
  // at the ends and the middle) and replaces the length: on every slice tile, a bar of the
  // longest of SCALE_MM that fits in SCALE_FRACTION of each tile's width at the current
  // zoom, labelled in mm above it. Each tile's pixels per mm are its own (NiiVue's
  // screenSlices, redone at every draw: the tile's width in pixels over its field of view
  // in mm, which zoom narrows), so the bar stays true when zooming.
  // The 3D views have no scale bar: a perspective rendering has no single mm per pixel.
  const SCALE_MM = [200, 100, 50, 20, 10, 5, 2, 1];
  const SCALE_FRACTION = 0.35; // ends left of the tile's middle, clear of the bottom letter
  const SCALE_COLOR = [1, 1, 1, 1]; // white, outlined in black: legible on any CT grey
  const TEXT_BOX = [0, 0, 0, 0.55]; // translucent black behind labels and letters

  function scaleBars(nv) {
    // one entry per slice tile: { axCorSag, mm, label, start: [x, y], end: [x, y] } in
    // canvas pixels; one length for all tiles of a canvas (the longest fitting every tile)
    nv.hepanavScaleBars = [];
    const bars = nv.hepanavScaleBars;
    const width = Number(nv.opts.rulerWidth);
    const tiles = nv.screenSlices.filter((tile) => tile.axCorSag <= niivue.SLICE_TYPE.SAGITTAL
      && tile.fovMM.length > 1 && Math.abs(tile.fovMM[0]) > 0 && tile.leftTopWidthHeight[2] !== 0);
    const pxPerMM = (tile) => Math.abs(tile.leftTopWidthHeight[2] / tile.fovMM[0]);
    const mm = SCALE_MM.find((v) => tiles.every((tile) =>
      v * pxPerMM(tile) <= SCALE_FRACTION * Math.abs(tile.leftTopWidthHeight[2])));
    if (!mm) return;
    for (const tile of tiles) {
      const [left, top, w, h] = tile.leftTopWidthHeight, tilePx = Math.abs(w);
      const x0 = Math.min(left, left + w) + 0.05 * tilePx;
      const y = top + h - Math.max(0.06 * h, 2 * width);
      const end = [x0 + mm * pxPerMM(tile), y];
      nv.drawRuler10cm([x0, y, end[0], y], [0, 0, 0, 1], width + 2);
      nv.drawRuler10cm([x0, y, end[0], y], SCALE_COLOR, width);
      const label = `${mm} mm`, scale = 0.8, textH = nv.fontPx * scale;
      nv.drawTextBetween([x0, y - 0.9 * textH - 2 * width - 6, end[0], y - 2 * width - 6],
                         label, scale, SCALE_COLOR);
      bars.push({ axCorSag: tile.axCorSag, mm, label, start: [x0, y], end });
    }
  }

  // NiiVue draws the orientation letters in plain grey (fontColor) without an outline: on
  // CT grey (the coronal "I" over the liver) they vanish. Drawn here white on a translucent
  // black box, by NiiVue's own letter placement (drawSliceOrientationText).
  function boxedOrientationLetters(nv) {
    const letters = nv.drawSliceOrientationText.bind(nv), text = nv.drawText.bind(nv);
    let boxed = false;
    nv.drawText = (xy, str, scale = 1, color = null) => {
      if (boxed) {
        const px = nv.fontPx * scale;
        nv.drawRect([xy[0] - 3, xy[1] - 2, nv.textWidth(px, str) + 6, px + 4], TEXT_BOX);
        color = SCALE_COLOR;
      }
      text(xy, str, scale, color);
    };
    nv.drawSliceOrientationText = (...args) => {
      boxed = true;
      try { letters(...args); } finally { boxed = false; }
    };
  }

  // Okabe-Ito colours (colour-blind safe) as single-colour NiiVue maps, on every viewer.
  const OKABE_ITO = { "hn-vermillion": [213, 94, 0], "hn-yellow": [240, 228, 66],
    "hn-blue": [0, 114, 178], "hn-sky-blue": [86, 180, 233] };

  function make(canvasId) {
    // Display conventions of the reports (hepanav.imaging.figures.planes): axial and
    // coronal radiological (patient's right on the screen's left), sagittal seen from the
    // patient's right (anterior on the left). Orientation letters large enough to read.
    const nv = new niivue.Niivue({ show3Dcrosshair: true, crosshairColor: [0.9, 0.62, 0, 1],
      isRadiologicalConvention: true, sagittalNoseLeft: true, dragAndDropEnabled: false,
      loadingText: "loading", fontMinPx: 22, fontSizeScaling: 0.8,
      // letters on all four sides of each slice, tiles apart so that two tiles' letters
      // do not run together ("L" "A", not "LA")
      showAllOrientationMarkers: true, multiplanarPadPixels: 24,
      isRuler: true, rulerWidth: 3 }); // scale bar: scaleBars above
    nv.drawRuler = () => scaleBars(nv);
    boxedOrientationLetters(nv);
    nv.attachTo(canvasId);
    for (const [name, rgb] of Object.entries(OKABE_ITO))
      nv.addColormap(name, { R: [0, rgb[0]], G: [0, rgb[1]], B: [0, rgb[2]], A: [0, 255], I: [0, 255] });
    nv.setSliceType(nv.sliceTypeMultiplanar);
    nv.setMultiplanarLayout && nv.setMultiplanarLayout(2); // a row: axial, coronal, sagittal
    return nv;
  }

  // NiiVue picks the reader by the name's extension; a DICOM series folder is served
  // as NIfTI (.nii.gz) under its folder name, which has none.
  const READABLE = /\.(nii|nii\.gz|nrrd|nhdr|mha|mhd)$/i;

  async function load(nv, url, extra) {
    let name = decodeURIComponent(url.split("/").pop());
    if (!READABLE.test(name)) name += ".nii.gz";
    await nv.loadVolumes([{ url, name, colormap: "gray", ...CT_WINDOW }].concat(extra || []));
  }

  function cursorOf(nv) {
    if (!nv.volumes.length) return null;
    const mm = nv.frac2mm(nv.scene.crosshairPos);
    return ras2lps([mm[0], mm[1], mm[2]]);
  }

  function moveTo(nv, lps) {
    nv.scene.crosshairPos = nv.mm2frac(lps2ras(lps));
    nv.drawScene();
    nv.createOnLocationChange();
  }

  async function linkedPair(idA, idB, urlA, urlB, onMove, extraA, extraB) {
    const a = make(idA), b = make(idB);
    a.broadcastTo([b], { "2d": true, "3d": true });
    b.broadcastTo([a], { "2d": true, "3d": true });
    const report = () => onMove(cursorOf(a) || cursorOf(b));
    a.onLocationChange = report; b.onLocationChange = report;
    async function reload() {
      await Promise.all([load(a, urlA(), extraA), load(b, urlB(), extraB)]); report(); }
    await reload();
    return { a, b, reload, cursor: () => cursorOf(a), moveTo: (lps) => { moveTo(a, lps); moveTo(b, lps); report(); } };
  }

  async function overlay(canvasId, ctUrl, mapUrl, sliderId) {
    const nv = make(canvasId);
    await load(nv, ctUrl, [{ url: mapUrl, name: "margin_map.nii.gz", colormap: "viridis",
      cal_min: -5, cal_max: 10, opacity: 0.7 }]);
    const slider = document.getElementById(sliderId);
    if (slider) slider.oninput = () => { nv.setOpacity(1, parseFloat(slider.value)); };
    return { nv, cursor: () => cursorOf(nv), moveTo: (lps) => moveTo(nv, lps) };
  }

  async function needles(canvasId, ctUrl, connectomeUrl) {
    const nv = make(canvasId);
    await load(nv, ctUrl);
    const response = await fetch(connectomeUrl, { credentials: "same-origin" });
    await nv.loadConnectome(await response.json());
    // The needles run inside the body: NiiVue's mesh X-ray draws them through the CT.
    nv.setOpacity(0, 0.35);
    nv.opts.meshXRay = 0.8;
    // a 3D perspective view: no scale bar (no single mm per pixel), the orientation cube
    nv.opts.isOrientCube = true;
    nv.setSliceType(nv.sliceTypeRender);
    nv.setClipPlane([0.2, 0, 90]);
    return { nv, cursor: () => cursorOf(nv), moveTo: (lps) => moveTo(nv, lps) };
  }

  // The findings of a margin result, each in its Okabe-Ito map (OKABE_ITO, made by make()).
  const FINDINGS = [
    ["residual_tumor.nii.gz", "hn-vermillion"],
    ["margin_0_5mm_surface.nii.gz", "hn-yellow"],
    ["ablation_zone.nii.gz", "hn-blue"],
  ];

  // Margin bands of the report's 3D view (hepanav.margin.views): 5 mm bands from -5 to
  // 15 mm, Okabe-Ito colours: residual < 0 vermillion, 0-5 yellow, 5-10 sky blue, >= 10 blue.
  const BANDS = { cal_min: -5, cal_max: 15,
    rgb: [[213, 94, 0], [240, 228, 66], [86, 180, 233], [0, 114, 178]] };

  async function surface(canvasId, tumourUrl, marginUrl, zoneUrl) {
    const nv = new niivue.Niivue({ dragAndDropEnabled: false, loadingText: "loading",
      backColor: [1, 1, 1, 1], isColorbar: false, fontMinPx: 22, fontSizeScaling: 0.8,
      show3Dcrosshair: false, isOrientCube: true }); // orientation cube: L/R, A/P, S/I faces
    nv.attachTo(canvasId);
    const R = [], G = [], B = [], A = [], I = [];
    BANDS.rgb.forEach((c, k) => {
      for (const edge of [0, 63]) { R.push(c[0]); G.push(c[1]); B.push(c[2]); A.push(255); I.push(64 * k + edge); } });
    nv.addColormap("hn-margin-bands", { R, G, B, A, I });
    nv.setSliceType(nv.sliceTypeRender);
    await nv.loadMeshes([
      { url: tumourUrl, name: "tumour.surf.gii", rgba255: [200, 200, 200, 255],
        layers: [{ url: marginUrl, name: "tumour_margin.func.gii", colormap: "hn-margin-bands",
                   cal_min: BANDS.cal_min, cal_max: BANDS.cal_max, opacity: 1,
                   isTransparentBelowCalMin: false }] },
      // the zone as neutral glass (a tint would shift the band colours seen through it)
      { url: zoneUrl, name: "ablation_zone.surf.gii", rgba255: [187, 187, 187, 255], opacity: 0.12 },
    ]);
    nv.setMeshShader(nv.meshes[0].id, "Matte"); // soft shading keeps the band colours legible
    nv.setRenderAzimuthElevation(120, 15);
    return nv;
  }

  async function result(canvasId, postUrl, segmentsUrl, preUrl, mamLps, fusionId, opacityId) {
    const nv = make(canvasId);
    const layers = [];
    if (preUrl) layers.push({ url: preUrl, name: "pre_in_post.nii.gz", colormap: "gray", opacity: 0, ...CT_WINDOW });
    const first = layers.length + 1;
    for (const [file, map] of FINDINGS)
      layers.push({ url: segmentsUrl + file, name: file, colormap: map, cal_min: 0.5, cal_max: 1, opacity: 0.7 });
    await load(nv, postUrl, layers);
    if (mamLps) moveTo(nv, mamLps);
    const fusion = document.getElementById(fusionId);
    if (fusion && preUrl) fusion.oninput = () => nv.setOpacity(1, parseFloat(fusion.value));
    const opacity = document.getElementById(opacityId);
    if (opacity) opacity.oninput = () => {
      for (let i = first; i < first + FINDINGS.length; i++) nv.setOpacity(i, parseFloat(opacity.value)); };
    return { nv, cursor: () => cursorOf(nv), moveTo: (lps) => moveTo(nv, lps) };
  }

  window.HepaNavViewer = { result, surface, linkedPair, overlay, needles, fmt, ras2lps, lps2ras };
})();
