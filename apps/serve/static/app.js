// The Sensorium demo page: four tabs over the server's /classify, /transcribe, /sentiment and /translate.
// Plain JavaScript, no libraries, no build step; everything it loads comes from this server.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TASKS = ["image", "speech", "sentiment", "translation"];
  const RATE = 16000; // recordings are sent as 16 kHz mono WAV, what the speech models take

  // --- tabs (WAI-ARIA tabs: arrow keys, Home and End move between tabs) --------------------------
  const tabs = TASKS.map((task) => $(`tab-${task}`));

  function selectTab(tab, focus) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
  }

  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab, false));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      selectTab(tabs[(moves[event.key] + tabs.length) % tabs.length], true);
    });
  });

  // --- talking to the server ------------------------------------------------------------------------
  async function post(path, body, headers) {
    let response;
    try {
      response = await fetch(path, { method: "POST", body, headers });
    } catch (err) {
      throw new Error(`The server could not be reached (${err.message}).`);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      throw new Error((data && data.error) || `The server answered ${response.status} ${response.statusText}.`);
    }
    return data;
  }

  const postJson = (path, value) => post(path, JSON.stringify(value), { "Content-Type": "application/json" });

  function show(task, status, error) {
    $(`${task}-status`).textContent = status || "";
    $(`${task}-error`).textContent = error ? `Sorry: ${error}` : "";
  }

  const percent = (score) => `${(100 * score).toFixed(1)}%`;

  function bars(list, entries) {
    list.replaceChildren(...entries.map(([label, score]) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = label;
      const track = document.createElement("span");
      track.className = "track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
      fill.style.display = "block";
      track.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = percent(score);
      item.append(name, track, value);
      return item;
    }));
  }

  // --- image ------------------------------------------------------------------------------------------
  const imageFile = $("image-file");
  const drop = $("image-drop");

  async function classify(file) {
    if (!file) return;
    const preview = $("image-preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("image-results").replaceChildren();
    show("image", `Classifying ${file.name}…`);
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const record = await post("/classify", form);
      bars($("image-results"), record.top_k.map((t) => [t.label, t.score]));
      show("image", `${record.input}: ${record.label} (${percent(record.score)})`);
    } catch (err) {
      show("image", "", err.message);
    }
  }

  imageFile.addEventListener("change", () => classify(imageFile.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) classify(file);
    else show("image", "", "Nothing to classify: drop an image file.");
  });

  // --- speech -----------------------------------------------------------------------------------------
  const recordButton = $("speech-record");
  let recording = null; // {recorder, stream, chunks, started, timer}

  function wavBytes(samples, rate) {
    const data = new DataView(new ArrayBuffer(44 + samples.length * 2));
    const text = (offset, s) => [...s].forEach((c, i) => data.setUint8(offset + i, c.charCodeAt(0)));
    text(0, "RIFF");
    data.setUint32(4, 36 + samples.length * 2, true);
    text(8, "WAVE");
    text(12, "fmt ");
    data.setUint32(16, 16, true);
    data.setUint16(20, 1, true); // PCM
    data.setUint16(22, 1, true); // mono
    data.setUint32(24, rate, true);
    data.setUint32(28, rate * 2, true);
    data.setUint16(32, 2, true);
    data.setUint16(34, 16, true);
    text(36, "data");
    data.setUint32(40, samples.length * 2, true);
    samples.forEach((x, i) => data.setInt16(44 + i * 2, Math.max(-1, Math.min(1, x)) * 0x7fff, true));
    return new Blob([data.buffer], { type: "audio/wav" });
  }

  // MediaRecorder gives WebM/Opus, which the server's decoders do not read: decode it here and send
  // 16 kHz mono WAV instead.
  async function toWav(blob) {
    const Context = window.AudioContext || window.webkitAudioContext;
    const context = new Context();
    try {
      const decoded = await context.decodeAudioData(await blob.arrayBuffer());
      const length = Math.max(1, Math.ceil(decoded.duration * RATE));
      const offline = new OfflineAudioContext(1, length, RATE);
      const source = offline.createBufferSource();
      source.buffer = decoded;
      source.connect(offline.destination);
      source.start();
      const rendered = await offline.startRendering();
      return wavBytes(rendered.getChannelData(0), RATE);
    } finally {
      context.close();
    }
  }

  const seconds = (s) => `${s.toFixed(2)} s`;

  async function transcribe(blob, name) {
    const audio = $("speech-audio");
    if (audio.src) URL.revokeObjectURL(audio.src);
    audio.src = URL.createObjectURL(blob);
    audio.hidden = false;
    $("speech-text").textContent = "";
    $("speech-segments").hidden = true;
    show("speech", `Transcribing ${name}…`);
    const form = new FormData();
    form.append("file", blob, name);
    try {
      const record = await post("/transcribe", form);
      $("speech-text").textContent = record.text || "(no speech heard)";
      const rows = record.segments.map((segment) => {
        const row = document.createElement("tr");
        for (const value of [seconds(segment.start), seconds(segment.end), segment.text]) {
          const cell = document.createElement("td");
          cell.textContent = value;
          row.append(cell);
        }
        return row;
      });
      $("speech-segments").tBodies[0].replaceChildren(...rows);
      $("speech-segments").hidden = rows.length === 0;
      show("speech", `${record.input}: ${seconds(record.duration)} of audio`);
    } catch (err) {
      show("speech", "", err.message);
    }
  }

  async function startRecording() {
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      show("speech", "", "This browser cannot record here (recording needs https or localhost); upload a file instead.");
      return;
    }
    let stream;
    try {
      // The raw signal: the browser's call-audio clean-up (noise suppression above all) eats the
      // consonants a recogniser needs.
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
      });
    } catch (err) {
      show("speech", "", `The microphone is not available (${err.message}).`);
      return;
    }
    // Lossless PCM in WebM where the browser records it (Chromium), else its default (Opus) at a high rate.
    const pcm = "audio/webm;codecs=pcm";
    const recorder = new MediaRecorder(stream, MediaRecorder.isTypeSupported(pcm) ? { mimeType: pcm }
      : { audioBitsPerSecond: 128000 });
    const chunks = [];
    recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
    recorder.addEventListener("stop", async () => {
      stream.getTracks().forEach((track) => track.stop());
      show("speech", "Preparing the recording…");
      let wav;
      try {
        wav = await toWav(new Blob(chunks, { type: recorder.mimeType }));
      } catch (err) {
        show("speech", "", `The recording could not be read (${err.message}).`);
        return;
      }
      transcribe(wav, "recording.wav");
    });
    const started = performance.now();
    const timer = setInterval(() => {
      $("speech-timer").textContent = seconds((performance.now() - started) / 1000);
    }, 100);
    recording = { recorder, timer };
    recorder.start();
    recordButton.textContent = "Stop";
    recordButton.setAttribute("aria-pressed", "true");
    show("speech", "Recording… press Stop when you are done.");
  }

  function stopRecording() {
    clearInterval(recording.timer);
    recording.recorder.stop();
    recording = null;
    recordButton.textContent = "Record";
    recordButton.setAttribute("aria-pressed", "false");
  }

  recordButton.addEventListener("click", () => (recording ? stopRecording() : startRecording()));
  $("speech-file").addEventListener("change", () => {
    const file = $("speech-file").files[0];
    if (file) transcribe(file, file.name);
  });

  // --- sentiment --------------------------------------------------------------------------------------
  $("sentiment-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("sentiment-text").value;
    $("sentiment-label").textContent = "";
    $("sentiment-results").replaceChildren();
    show("sentiment", "Reading…");
    try {
      const record = await postJson("/sentiment", { text });
      $("sentiment-label").textContent = record.label;
      const scores = Object.entries(record.scores).sort((a, b) => b[1] - a[1]);
      bars($("sentiment-results"), scores);
      show("sentiment", "");
    } catch (err) {
      show("sentiment", "", err.message);
    }
  });

  // --- translation ------------------------------------------------------------------------------------
  // The placeholders the translator protects (sensorium.runtime.placeholders.PLACEHOLDER_PATTERN),
  // here only to highlight them: printf and str.format fields, templates, HTML tags and entities.
  const PLACEHOLDER = new RegExp([
    String.raw`%%`,
    String.raw`%(?:\([^()\s]+\))?[#0+-]*(?:[1-9]\d*|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa]`,
    String.raw`\$\{[^{}]*\}`,
    String.raw`\{\{\s*[A-Za-z_][\w.]*\s*(?:\|\s*[\w.]+(?::[^{}|]*|\s*))*\}\}`,
    String.raw`\{\{|\}\}`,
    String.raw`\{(?:\d+|[A-Za-z_]\w*)\s*,\s*(?:number|date|time|spellout|ordinal|duration)(?:\s*,[^{}]*)?\}`,
    String.raw`\{(?:\d+|[A-Za-z_]\w*)?(?:\.[A-Za-z_]\w*|\[[^\[\]{}]*\])*(?:![rsa])?(?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?\}`,
    String.raw`<\/?[A-Za-z][\w:.-]*(?:\s+[^\s"'<>\/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>` + "`" + String.raw`]+))?)*\s*\/?>`,
    String.raw`&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});`,
  ].join("|"), "g");

  const findPlaceholders = (text) => [...text.matchAll(PLACEHOLDER)].map((m) => m[0]);

  // The translation as text nodes, with the source's placeholders wrapped in <mark>.
  function highlighted(source, output) {
    const wanted = new Set(findPlaceholders(source));
    const parts = [];
    let last = 0;
    for (const match of output.matchAll(PLACEHOLDER)) {
      if (!wanted.has(match[0])) continue;
      parts.push(document.createTextNode(output.slice(last, match.index)));
      const mark = document.createElement("mark");
      mark.textContent = match[0];
      parts.push(mark);
      last = match.index + match[0].length;
    }
    parts.push(document.createTextNode(output.slice(last)));
    return parts;
  }

  $("translation-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("translation-text").value;
    $("translation-output").replaceChildren();
    $("translation-hint").hidden = true;
    show("translation", "Translating…");
    try {
      const record = await postJson("/translate", { text });
      const parts = highlighted(text, record.translation);
      $("translation-output").replaceChildren(...parts);
      $("translation-hint").hidden = !parts.some((node) => node.nodeName === "MARK");
      show("translation", "");
    } catch (err) {
      show("translation", "", err.message);
    }
  });

  // Ctrl+Enter (or Cmd+Enter) in a text box sends it.
  for (const id of ["sentiment", "translation"]) {
    $(`${id}-text`).addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        $(`${id}-form`).requestSubmit();
      }
    });
  }

  // --- which models are served ------------------------------------------------------------------------
  async function describeModels() {
    let models = [];
    try {
      const response = await fetch("/v1/models");
      models = (await response.json()).models || [];
    } catch (err) {
      for (const task of TASKS) show(task, "", "The server could not be reached.");
      return;
    }
    for (const task of TASKS) {
      const served = models.filter((m) => m.task === task);
      const panel = $(`panel-${task}`);
      if (served.length === 0) {
        $(`model-${task}`).textContent = `No ${task} model is served here.`;
        panel.querySelectorAll("button, input, textarea").forEach((el) => { el.disabled = true; });
      } else {
        const m = served[0];
        $(`model-${task}`).textContent = `Model: ${m.name} (${m.file}, ${m.runtime})`;
      }
    }
  }

  window.sensoriumPage = { findPlaceholders, selectTab: (task) => selectTab($(`tab-${task}`), true) };
  describeModels();
})();
