// HepaNav's small layer over NiiVue (served locally from /static/vendor).
// NiiVue works in RAS world millimetres; HepaNav's coordinates are LPS:
// x_LPS = -x_RAS, y_LPS = -y_RAS, z_LPS = z_RAS.
(function () {
  const CT_WINDOW = { cal_min: 40 - 200, cal_max: 40 + 200 }; // W 400 / L 40 HU
  const ras2lps = (m) => [-m[0], -m[1], m[2]];
  const lps2ras = (p) => [-p[0], -p[1], p[2]];
  const fmt = (p) => p ? p.map((v) => v.toFixed(1)).join(",") : "";

  function make(canvasId) {
    // Display conventions of the reports (hepanav.imaging.figures.planes): axial and
    // coronal radiological (patient's right on the screen's left), sagittal seen from the
    // patient's right (anterior on the left). Orientation letters large enough to read.
    const nv = new niivue.Niivue({ show3Dcrosshair: true, crosshairColor: [0.9, 0.62, 0, 1],
      isRadiologicalConvention: true, sagittalNoseLeft: true, dragAndDropEnabled: false,
      loadingText: "loading", fontMinPx: 22, fontSizeScaling: 0.8,
      // letters on all four sides of each slice, tiles apart so that two tiles' letters
      // do not run together ("L" "A", not "LA")
      showAllOrientationMarkers: true, multiplanarPadPixels: 24 });
    nv.attachTo(canvasId);
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
    nv.setSliceType(nv.sliceTypeRender);
    nv.setClipPlane([0.2, 0, 90]);
    return { nv, cursor: () => cursorOf(nv), moveTo: (lps) => moveTo(nv, lps) };
  }

  // Okabe-Ito colours (colour-blind safe) as single-colour NiiVue maps.
  const FINDINGS = [
    ["residual_tumor.nii.gz", "hn-vermillion", [213, 94, 0]],
    ["margin_0_5mm_surface.nii.gz", "hn-yellow", [240, 228, 66]],
    ["ablation_zone.nii.gz", "hn-blue", [0, 114, 178]],
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
    for (const [, name, rgb] of FINDINGS)
      nv.addColormap(name, { R: [0, rgb[0]], G: [0, rgb[1]], B: [0, rgb[2]], A: [0, 255], I: [0, 255] });
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
