// Live job progress by server-sent events; the state lives on the server, so a reload
// (or another workstation) picks it up where it is.
(function () {
  const box = document.getElementById("job-status");
  if (!box) return;
  const state = box.dataset.state;
  if (state === "done" || state === "failed") return;
  const source = new EventSource(`/api/jobs/${box.dataset.job}/events`);
  source.onmessage = (event) => {
    const s = JSON.parse(event.data);
    document.getElementById("state").textContent = s.state;
    document.getElementById("state").className = "state-" + s.state;
    document.getElementById("step").textContent = s.step;
    document.getElementById("progress").value = s.progress;
    if (s.state === "done" || s.state === "failed") { source.close(); window.location.reload(); }
  };
})();
