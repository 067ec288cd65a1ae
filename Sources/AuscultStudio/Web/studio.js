// Auscult Studio's page: plain JavaScript over the JSON API (GET /api/openapi.json describes it).
// Views are chosen by the location hash: #/features/INDEX/FEATURE and #/inspect/INDEX[/clip/NAME].
'use strict';

const token = new URLSearchParams(location.search).get('token');
const state = { indexes: [], index: null, list: [], page: null, inspection: null };
const $ = (sel, root = document) => root.querySelector(sel);

// ---------------------------------------------------------------- API
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers.Authorization = 'Bearer ' + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const type = response.headers.get('Content-Type') || '';
  const body = type.startsWith('application/json') ? await response.json() : null;
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.status + ' ' + response.statusText;
    throw new Error(message);
  }
  return body;
}
function mediaURL(path, params = {}) {
  const q = new URLSearchParams(params);
  if (token) q.set('token', token);
  const s = q.toString();
  return s ? path + '?' + s : path;
}
function showError(error) {
  const box = $('#error');
  box.textContent = error.message || String(error);
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 8000);
}
const enc = encodeURIComponent;
const fmt = (v, d = 3) => (v === null || v === undefined) ? 'n/a' : Number(v).toPrecision(d);

// ---------------------------------------------------------------- colour
const MAGMA = [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]];
function magma(t) {
  t = Math.max(0, Math.min(1, t)) * (MAGMA.length - 1);
  const i = Math.min(MAGMA.length - 2, Math.floor(t)), f = t - i, a = MAGMA[i], b = MAGMA[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}
/** Diverging blue (negative) – white (0) – red (positive), for v in [-1, 1]. */
function diverging(v) {
  v = Math.max(-1, Math.min(1, v));
  const pos = [200, 55, 45], neg = [43, 99, 184], w = [247, 247, 247];
  const c = v >= 0 ? pos : neg, t = Math.abs(v);
  return [w[0] + (c[0] - w[0]) * t, w[1] + (c[1] - w[1]) * t, w[2] + (c[2] - w[2]) * t];
}
const css = (c) => `rgb(${c[0] | 0},${c[1] | 0},${c[2] | 0})`;

/** Decodes 8-bit levels sent as base64 (MelImage data, attention patterns). */
function levels(b64) {
  const raw = atob(b64), bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** Writes each word in a row of height `h` at `y`, from its start (`px(t)` maps seconds to x) to
 *  its end, clipped to that span and to `minX…maxX`, with a tick where it starts. */
function drawWords(ctx, words, px, y, h, minX, maxX) {
  ctx.font = '11px system-ui, sans-serif'; ctx.textBaseline = 'top'; ctx.fillStyle = '#1d232b';
  for (const w of words) {
    const x0 = Math.max(minX, px(w.start)), x1 = Math.min(maxX, px(w.end));
    ctx.strokeStyle = '#c4cad3'; ctx.beginPath(); ctx.moveTo(x0 + 0.5, y); ctx.lineTo(x0 + 0.5, y + 6); ctx.stroke();
    ctx.save(); ctx.beginPath(); ctx.rect(x0, y, Math.max(0, x1 - x0), h); ctx.clip();
    ctx.fillText(w.word, x0 + 2, y + 4); ctx.restore();
  }
}
/** Draws a spectrogram into a box of the canvas, low frequencies at the bottom. */
function drawMel(ctx, mel, x, y, w, h) {
  if (mel.frames === 0) return;
  const level = levels(mel.data), img = ctx.createImageData(mel.frames, mel.bins);
  for (let f = 0; f < mel.frames; f++) {
    for (let b = 0; b < mel.bins; b++) {
      const c = magma(level[f * mel.bins + b] / 255), o = ((mel.bins - 1 - b) * mel.frames + f) * 4;
      img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
    }
  }
  const tmp = document.createElement('canvas');
  tmp.width = mel.frames; tmp.height = mel.bins;
  tmp.getContext('2d').putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, x, y, w, h);
}

// ---------------------------------------------------------------- playback with a cursor
const player = { audio: new Audio(), card: null, stop: null };
function play(url, from, onTime, onEnd) {
  if (player.stop) player.stop();
  const audio = player.audio;
  audio.src = url;
  let running = true;
  const tick = () => {
    if (!running) return;
    onTime(from + audio.currentTime);
    if (!audio.paused && !audio.ended) requestAnimationFrame(tick);
  };
  player.stop = () => { running = false; audio.pause(); onEnd(); player.stop = null; };
  audio.onended = () => { onTime(from + audio.duration); if (player.stop) player.stop(); };
  audio.play().then(() => requestAnimationFrame(tick)).catch((e) => { showError(e); if (player.stop) player.stop(); });
}

// ---------------------------------------------------------------- example cards
const CARD = { w: 300, mel: 80, strip: 12, words: 22 };
/** Draws a trace: spectrogram with the activation line over it, a diverging strip, the words. */
function drawTrace(canvas, trace, scale, cursor) {
  const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  const span = trace.end - trace.start, px = (t) => (t - trace.start) / span * W;
  drawMel(ctx, trace.mel, 0, 0, W, CARD.mel);
  const n = trace.activation.length, fw = trace.frame_seconds;
  // Strip: one cell per encoder frame, coloured by value / scale.
  for (let i = 0; i < n; i++) {
    const t0 = (trace.first_frame + i) * fw, x0 = px(t0), x1 = px(t0 + fw);
    ctx.fillStyle = css(diverging(trace.activation[i] / scale));
    ctx.fillRect(x0, CARD.mel, Math.max(1, x1 - x0 + 0.5), CARD.strip);
  }
  // Line over the spectrogram: 0 at mid-height, ±scale at the edges.
  ctx.strokeStyle = 'rgba(255,255,255,0.95)'; ctx.lineWidth = 1.5; ctx.beginPath();
  for (let i = 0; i < n; i++) {
    const x = px((trace.first_frame + i + 0.5) * fw), y = CARD.mel / 2 - trace.activation[i] / scale * (CARD.mel / 2 - 2);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  }
  ctx.stroke();
  drawWords(ctx, trace.words, px, CARD.mel + CARD.strip, CARD.words, 0, W);
  if (cursor !== undefined) {
    ctx.strokeStyle = '#00e0ff'; ctx.lineWidth = 2; ctx.beginPath();
    ctx.moveTo(px(cursor), 0); ctx.lineTo(px(cursor), CARD.mel + CARD.strip); ctx.stroke();
  }
}

function valueAt(trace, t) {
  const i = Math.floor(t / trace.frame_seconds) - trace.first_frame;
  return i >= 0 && i < trace.activation.length ? trace.activation[i] : null;
}

/** A card for one example: fetches its trace (±1 s around the frame), draws and plays it. */
function exampleCard(index, feature, example, scale) {
  const node = $('#example-template').content.firstElementChild.cloneNode(true);
  $('.value', node).textContent = fmt(example.value);
  $('.clip', node).textContent = example.clip;
  $('.time', node).textContent = example.time.toFixed(2) + ' s' + (example.word ? ' · “' + example.word + '”' : '');
  node.dataset.value = example.value;
  const canvas = $('canvas', node);
  canvas.width = CARD.w; canvas.height = CARD.mel + CARD.strip + CARD.words;
  const start = Math.max(0, example.time - 1), end = example.time + 1;
  const path = `/api/indexes/${enc(index)}/clips/${enc(example.clip)}`;
  node.load = () => api(`${path}/trace?` + new URLSearchParams({ feature, start, end })).then((trace) => {
    node.trace = trace;
    node.dataset.drawn = 'true';
    drawTrace(canvas, trace, scale);
  });
  $('.play', node).addEventListener('click', () => {
    const trace = node.trace;
    if (!trace) return;
    if (player.card === node && player.stop) { player.stop(); return; }
    player.card = node;
    $('.play', node).textContent = '■';
    play(mediaURL(`${path}/audio`, { start: trace.start, end: trace.end }), trace.start, (t) => {
      node.dataset.cursor = t.toFixed(3);
      drawTrace(canvas, trace, scale, t);
      const v = valueAt(trace, t);
      $('.under-cursor', node).textContent = v === null ? '' : 'activation here: ' + fmt(v);
    }, () => { $('.play', node).textContent = '▶'; drawTrace(canvas, trace, scale); player.card = null; });
  });
  return node;
}

/** Loads the cards' traces a few at a time. */
async function loadCards(cards) {
  const queue = cards.slice();
  const worker = async () => {
    while (queue.length) {
      const card = queue.shift();
      try { await card.load(); } catch (e) { showError(e); }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  document.body.dataset.cards = 'drawn';
}

// ---------------------------------------------------------------- plots
function histogram(canvas, values, bins, label) {
  const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height - 14;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!values.length) { ctx.fillStyle = '#66707c'; ctx.fillText('no data', 8, 20); return; }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!(hi > lo)) hi = lo + 1;
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / (hi - lo) * bins))]++;
  const top = Math.max(...counts);
  ctx.fillStyle = '#2257c9';
  for (let i = 0; i < bins; i++) {
    const h = counts[i] / top * (H - 4);
    ctx.fillRect(i * W / bins + 1, H - h, W / bins - 2, h);
  }
  ctx.fillStyle = '#66707c'; ctx.font = '10px system-ui, sans-serif'; ctx.textBaseline = 'top';
  ctx.fillText(fmt(lo), 0, H + 2);
  const right = fmt(hi); ctx.fillText(right, W - ctx.measureText(right).width, H + 2);
  if (label) { const m = ctx.measureText(label).width; ctx.fillText(label, (W - m) / 2, H + 2); }
}

// ---------------------------------------------------------------- features view
async function loadFeatureList() {
  const word = state.search && isNaN(Number(state.search)) ? state.search : null;
  const params = new URLSearchParams({ sort: $('#sort-select').value, limit: 200 });
  if (word) params.set('word', word);
  const list = await api(`/api/indexes/${enc(state.index)}/features?` + params);
  const ol = $('#feature-list');
  ol.textContent = '';
  if (!list.length) { const li = document.createElement('li'); li.textContent = word ? `no feature fires most on words with “${word}”` : 'empty index'; ol.append(li); }
  for (const f of list) {
    const li = document.createElement('li');
    li.dataset.feature = f.feature;
    const right = f.examples ? `${f.examples} on “${word}”` : `max ${fmt(f.max_value)} · ${fmt(f.density, 2)}`;
    li.innerHTML = `<span>#${f.feature}</span><span class="muted"></span>`;
    li.lastChild.textContent = right;
    li.addEventListener('click', () => { location.hash = `#/features/${enc(state.index)}/${f.feature}`; });
    ol.append(li);
  }
  const densities = await api(`/api/indexes/${enc(state.index)}/densities`);
  histogram($('#density-plot'), densities.filter((d) => d > 0).map((d) => Math.log10(d)), 30);
}

function filteredExamples(list) {
  const lo = parseFloat($('#filter-min').value), hi = parseFloat($('#filter-max').value), abs = $('#filter-abs').checked;
  return list.filter((e) => {
    const v = abs ? Math.abs(e.value) : e.value;
    return !(v < lo) && !(v > hi);
  });
}

/** The phoneme and word a feature's examples fall on (approximate: dictionary phonemes spread over word timing), with p against random frames. */
async function showLabels(index, feature, el) {
  let l;
  try { l = await api(`/api/indexes/${enc(index)}/features/${feature}/labels`); } catch (e) { el.textContent = 'labels: ' + e.message; return; }
  const part = (name, s) => s ? `${name} ${s.label} (${Math.round(100 * s.share)} % of ${s.examples}, p ${s.p.toFixed(3)})` : null;
  const top = [part('phoneme', l.top_phoneme), part('word', l.top_word)].filter(Boolean).join(' · ');
  const neg = [part('phoneme', l.negative_phoneme), part('word', l.negative_word)].filter(Boolean).join(' · ');
  el.textContent = `Fires on: ${top || 'n/a'}. Most negative on: ${neg || 'n/a'}.`;
  el.title = 'The most common phoneme and word at its top and most negative examples (CMUdict phonemes spread evenly over the word timing: approximate); p: chance of so large a share when each example is a random frame of its own clip.';
  el.dataset.feature = String(feature);
}

async function showFeature(index, feature) {
  const page = await api(`/api/indexes/${enc(index)}/features/${feature}?examples=20`);
  state.page = page;
  for (const li of document.querySelectorAll('#feature-list li')) li.classList.toggle('current', li.dataset.feature == feature);
  const root = $('#feature-page');
  root.textContent = '';
  const what = page.kind === 'sae' ? 'Latent' : 'Neuron';
  const h = document.createElement('h2');
  h.textContent = `${what} ${page.feature} · ${page.hook}`;
  root.append(h);
  const stats = document.createElement('div');
  stats.className = 'stats';
  const items = [['fires in', `${page.fired} frames`], ['density', fmt(page.density)], ['mean when active', fmt(page.mean_active)],
    ['max', fmt(page.max_value)], ['min' + (page.kind === 'sae' ? ' (pre-act.)' : ''), fmt(page.min_value)]];
  for (const [k, v] of items) { const d = document.createElement('div'); d.innerHTML = '<b></b><span class="muted"></span>'; d.firstChild.textContent = v; d.lastChild.textContent = k; stats.append(d); }
  root.append(stats);
  const labels = document.createElement('p'); labels.id = 'feature-labels'; labels.className = 'muted';
  root.append(labels);
  showLabels(index, feature, labels);
  const row = document.createElement('div'); row.className = 'row';
  const fig = document.createElement('figure');
  fig.innerHTML = '<canvas id="activation-hist" width="320" height="110"></canvas><figcaption class="legend"></figcaption>';
  fig.lastChild.textContent = `activations where it fires (sample of ${page.sample.length} frames)`;
  row.append(fig);
  const co = document.createElement('div');
  co.innerHTML = '<h3>Fires together with</h3><div class="chips"></div><p class="legend">features most often among the most active in the frames of its top examples</p>';
  for (const c of page.coactive) {
    const a = document.createElement('a');
    a.href = `#/features/${enc(index)}/${c.feature}`;
    a.textContent = `#${c.feature} (${c.examples}×)`;
    a.title = `mean value there ${fmt(c.mean_value)}`;
    $('.chips', co).append(a);
  }
  if (!page.coactive.length) $('.chips', co).textContent = 'none recorded';
  row.append(co);
  root.append(row);
  histogram($('#activation-hist'), page.sample, 24);

  const filters = document.createElement('div');
  filters.className = 'filters';
  filters.innerHTML = `<span>Show activations</span>
    <label>from <input id="filter-min" type="number" step="any"></label>
    <label>to <input id="filter-max" type="number" step="any"></label>
    <label><input id="filter-abs" type="checkbox"> use absolute value</label>
    <span class="legend">strip and line: activation per 20 ms frame, blue − · white 0 · red + (scale ±<span id="scale"></span>)</span>`;
  root.append(filters);
  const scale = Math.max(Math.abs(page.max_value || 0), Math.abs(page.min_value || 0), 1e-6);
  $('#scale', filters).textContent = fmt(scale);
  const sections = document.createElement('div');
  root.append(sections);
  const render = () => {
    sections.textContent = '';
    const cards = [];
    // Closed sections fetch their cards' traces when first opened.
    const section = (title, list, open = true) => {
      const shown = filteredExamples(list);
      const d = document.createElement('details'); d.open = open;
      d.innerHTML = '<summary></summary><div class="examples"></div>';
      d.firstChild.textContent = `${title} (${shown.length})`;
      const mine = shown.map((e) => exampleCard(index, page.feature, e, scale));
      for (const c of mine) $('.examples', d).append(c);
      if (open) cards.push(...mine);
      else d.addEventListener('toggle', () => { if (d.open && !d.loaded) { d.loaded = true; loadCards(mine); } });
      sections.append(d);
      return d;
    };
    const top = section('Top examples', page.top); top.id = 'top-examples';
    const q = document.createElement('h3'); q.textContent = 'Quantile groups (frames sampled where it fires)'; sections.append(q);
    for (const g of page.quantiles) {
      section(`${Math.round(g.from_quantile * 100)}–${Math.round(g.to_quantile * 100)} % · ${fmt(g.low)} to ${fmt(g.high)}`, g.examples, false);
    }
    section('Most negative' + (page.kind === 'sae' ? ' (pre-activations)' : ''), page.negative, false);
    document.body.dataset.cards = 'loading';
    loadCards(cards);
  };
  for (const id of ['#filter-min', '#filter-max', '#filter-abs']) $(id, filters).addEventListener('change', render);
  render();
  document.body.dataset.state = 'feature';
}

// ---------------------------------------------------------------- inspect view
async function loadClips() {
  const names = await api(`/api/indexes/${enc(state.index)}/clips`);
  const select = $('#clip-select');
  select.length = 1;
  for (const n of names) { const o = document.createElement('option'); o.value = n; o.textContent = n; select.append(o); }
}

/** The prompt and prefix the decoder reads before the transcript, as query parameters (`&prompt=…`). */
function contextQuery() {
  let q = '';
  for (const key of ['prompt', 'prefix']) {
    const v = $(`#inspect-${key}`).value.trim();
    if (v) q += `&${key}=${enc(v)}`;
  }
  return q;
}

async function inspectClip(name) {
  document.body.dataset.state = 'inspecting';
  const r = await api(`/api/indexes/${enc(state.index)}/clips/${enc(name)}/inspect?features=12${contextQuery()}`);
  showInspection(r);
}

async function inspectUpload(blob, name) {
  document.body.dataset.state = 'inspecting';
  $('#inspect-result').textContent = 'Transcribing…';
  const r = await api(`/api/indexes/${enc(state.index)}/inspect?name=${enc(name)}${contextQuery()}`, {
    method: 'POST', body: blob, headers: { 'Content-Type': 'application/octet-stream' } });
  showInspection(r);
}

const INS = { mel: 80, words: 22, row: 12, axis: 16 };
function drawInspection(canvas, r, cursor) {
  const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height, label = 54;
  const plotW = W - label, span = Math.max(r.frames * 0.02, 0.02), px = (t) => label + t / span * plotW;
  ctx.clearRect(0, 0, W, H);
  drawMel(ctx, r.mel, label, 0, plotW, INS.mel);
  drawWords(ctx, r.words, px, INS.mel, INS.words, label, W);
  const y0 = INS.mel + INS.words;
  r.features.forEach((f, k) => {
    const y = y0 + k * INS.row;
    ctx.fillStyle = '#1d232b'; ctx.fillText('#' + f.feature, 2, y + 1);
    for (let i = 0; i < f.values.length; i++) {
      ctx.fillStyle = css(diverging(f.values[i] / f.max));
      ctx.fillRect(px(i * 0.02), y, Math.max(1, plotW / r.frames + 0.5), INS.row - 1);
    }
  });
  ctx.fillStyle = '#66707c';
  for (let t = 0; t <= span; t += span > 12 ? 5 : 1) ctx.fillText(t + ' s', px(t) - 4, H - INS.axis + 3);
  if (cursor !== undefined) {
    ctx.strokeStyle = '#00e0ff'; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(px(cursor), 0); ctx.lineTo(px(cursor), H - INS.axis); ctx.stroke();
    ctx.lineWidth = 1;
  }
}

function audioPath(r) {
  return r.upload ? `/api/uploads/${enc(r.clip)}/audio` : `/api/indexes/${enc(r.index)}/clips/${enc(r.clip)}/audio`;
}

function showInspection(r) {
  state.inspection = r;
  const root = $('#inspect-result');
  root.textContent = '';
  const h = document.createElement('h2');
  h.textContent = (r.upload ? 'Upload' : r.clip) + ` · ${r.duration.toFixed(2)} s`;
  root.append(h);
  const t = document.createElement('p'); t.className = 'transcript'; t.id = 'transcript';
  for (const w of r.words) {
    const s = document.createElement('span'); s.className = 'word'; s.textContent = w.word; s.title = `${w.start.toFixed(2)}–${w.end.toFixed(2)} s`;
    s.addEventListener('click', () => playInspection(w.start));
    t.append(s, ' ');
  }
  if (!r.words.length) t.textContent = r.transcript || '(no speech)';
  root.append(t);
  const canvas = document.createElement('canvas');
  canvas.className = 'inspect-canvas'; canvas.id = 'inspect-canvas';
  canvas.width = Math.min(1200, Math.max(600, document.body.clientWidth - 60));
  canvas.height = INS.mel + INS.words + r.features.length * INS.row + INS.axis;
  canvas.title = 'click a feature row to open its page; click the spectrogram to play from there';
  canvas.addEventListener('click', (ev) => {
    const rect = canvas.getBoundingClientRect(), x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    const row = Math.floor((y - INS.mel - INS.words) / INS.row);
    if (y > INS.mel + INS.words && row >= 0 && row < r.features.length) {
      location.hash = `#/features/${enc(r.index)}/${r.features[row].feature}`;
    } else if (x > 54) {
      playInspection((x - 54) / (canvas.width - 54) * r.frames * 0.02);
    }
  });
  root.append(canvas);
  const legend = document.createElement('p'); legend.className = 'legend';
  legend.textContent = `rows: the ${r.features.length} features with the highest peak in this clip, each scaled to its own peak (white 0, red peak)`;
  root.append(legend);
  const play = document.createElement('button'); play.id = 'inspect-play'; play.textContent = '▶ Play'; play.type = 'button';
  play.addEventListener('click', () => playInspection(0));
  root.append(play);
  drawInspection(canvas, r);
  root.append(steerPanel(r));
  root.append(attentionPanel(r));
  document.body.dataset.state = 'inspected';
}

function playInspection(from) {
  const r = state.inspection, canvas = $('#inspect-canvas');
  play(mediaURL(audioPath(r), { start: from }), from, (t) => { canvas.dataset.cursor = t.toFixed(3); drawInspection(canvas, r, t); },
    () => drawInspection(canvas, r));
}

function steerPanel(r) {
  const box = document.createElement('div'); box.className = 'steer';
  const sae = (state.indexes.find((i) => i.id === r.index) || {}).kind === 'sae';
  box.innerHTML = `<h3>Steer</h3>
    <label>${sae ? 'Latent' : 'Neuron'} <select id="steer-feature"></select></label>
    <label><select id="steer-mode"><option value="scale">scale ×</option><option value="clamp">clamp to</option></select></label>
    <input id="steer-value" type="number" step="any" value="0">
    ${sae ? '<label><input id="steer-error" type="checkbox" checked> add the SAE’s error back</label>' : ''}
    <button id="steer-button" type="button">Steer</button>
    <div id="steer-result"></div>`;
  for (const f of r.features) { const o = document.createElement('option'); o.value = f.feature; o.textContent = `#${f.feature} (peak ${fmt(f.max)})`; $('#steer-feature', box).append(o); }
  $('#steer-button', box).addEventListener('click', () => steer(r).catch(showError));
  return box;
}

async function steer(r) {
  const out = $('#steer-result');
  out.textContent = 'Running…';
  const body = { index: r.index, feature: Number($('#steer-feature').value), mode: $('#steer-mode').value,
    value: Number($('#steer-value').value) };
  if (r.upload) body.upload = r.clip; else body.clip = r.clip;
  const err = $('#steer-error'); if (err) body.keep_error = err.checked;
  const s = await api('/api/steer', { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  out.textContent = '';
  const p = document.createElement('p'); p.className = 'diff'; p.id = 'steer-diff';
  for (const w of s.diff) { const span = document.createElement('span'); span.className = w.op; span.textContent = w.word; p.append(span, ' '); }
  const head = document.createElement('p'); head.className = 'muted';
  head.textContent = s.changed ? `${s.edit}: the transcript changed (red: lost, green: new)` : `${s.edit}: the transcript did not change`;
  out.append(head, p);
  const span = Math.max(r.duration, ...s.diff.map((w) => w.end || 0));
  for (const [label, words, ops] of [['clean', s.clean.words, 'removed'], ['steered', s.steered.words, 'added']]) {
    const row = document.createElement('div'); row.className = 'aligned'; row.title = label + ' transcript, words at their times';
    const changed = new Set(s.diff.filter((w) => w.op === ops).map((w) => w.start + '|' + w.word));
    for (const w of words) {
      const e = document.createElement('span');
      e.style.left = (w.start / span * 100) + '%'; e.style.width = ((w.end - w.start) / span * 100) + '%';
      e.style.top = label === 'clean' ? '2px' : '22px';
      e.textContent = w.word; if (changed.has(w.start + '|' + w.word)) e.className = ops;
      row.append(e);
    }
    out.append(row);
  }
  document.body.dataset.steered = s.changed ? 'changed' : 'same';
}

// ---------------------------------------------------------------- attention patterns
function attentionPanel(r) {
  const box = document.createElement('div'); box.className = 'steer'; box.id = 'attention';
  box.innerHTML = `<h3>Attention</h3>
    <label><select id="attention-kind"><option value="cross">cross-attention (tokens × time)</option>
      <option value="encoder">encoder self-attention (time × time)</option></select></label>
    <label>layer <input id="attention-layer" type="number" min="0" value="0"></label>
    <label>head <input id="attention-head" type="number" min="0" value="0"></label>
    <button id="attention-button" type="button">Show</button>
    <div><canvas id="attention-canvas" class="inspect-canvas" width="10" height="10" hidden></canvas></div>
    <p class="legend" id="attention-legend"></p>`;
  $('#attention-button', box).addEventListener('click', () => showAttention(r).catch(showError));
  return box;
}

async function showAttention(r) {
  const params = new URLSearchParams({ kind: $('#attention-kind').value, layer: $('#attention-layer').value, head: $('#attention-head').value });
  const path = r.upload ? `/api/uploads/${enc(r.clip)}/attention` : `/api/indexes/${enc(r.index)}/clips/${enc(r.clip)}/attention`;
  const a = await api(path + '?' + params);
  const canvas = $('#attention-canvas'), label = 54, W = Math.min(1200, Math.max(600, document.body.clientWidth - 60));
  const plotW = W - label, rowH = a.kind === 'cross' ? 12 : plotW / a.rows;
  canvas.width = W; canvas.height = INS.mel + INS.words + Math.min(900, Math.ceil(a.rows * rowH));
  canvas.hidden = false;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, W, canvas.height);
  drawMel(ctx, a.mel, label, 0, plotW, INS.mel);
  const px = (t) => label + t / (a.frames * 0.02) * plotW;
  drawWords(ctx, a.words, px, INS.mel, INS.words, label, W);
  const data = levels(a.data), img = ctx.createImageData(a.cols, a.rows);
  for (let i = 0; i < a.rows * a.cols; i++) {
    const c = magma(Math.sqrt(data[i] / 255)); img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
  }
  const tmp = document.createElement('canvas'); tmp.width = a.cols; tmp.height = a.rows;
  tmp.getContext('2d').putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  const h = canvas.height - INS.mel - INS.words;
  ctx.drawImage(tmp, label, INS.mel + INS.words, plotW, h);
  if (a.kind === 'cross') {
    ctx.fillStyle = '#1d232b';
    a.tokens.forEach((t, i) => ctx.fillText(t.length > 8 ? t.slice(0, 8) + '…' : t, 2, INS.mel + INS.words + i * h / a.rows));
  }
  $('#attention-legend').textContent = a.kind === 'cross'
    ? `cross-attention of layer ${a.layer}, head ${a.head} (of ${a.layers} layers × ${a.heads} heads): each decoder position (row) over the audio frames (colour: square root of the weight, black 0, yellow 1)`
    : `encoder self-attention of layer ${a.layer}, head ${a.head}: each frame (row, top = start) over the frames (columns, aligned with the spectrogram; colour: square root of the weight)`;
  canvas.dataset.kind = a.kind; canvas.dataset.rows = a.rows;
  document.body.dataset.attention = `${a.kind}:${a.layer}:${a.head}`;
}

// ---------------------------------------------------------------- recording (WAV, in the page)
// The microphone's samples reach the page through an AudioWorklet (recorder-worklet.js) and are
// uploaded as a WAV file at the context's rate; the server resamples to 16 kHz.
const recorder = { stream: null, context: null, chunks: [], node: null, started: 0 };
async function toggleRecording() {
  const button = $('#record-button');
  if (recorder.stream) {
    const rate = recorder.context.sampleRate;
    recorder.node.port.onmessage = null; recorder.node.disconnect();
    recorder.stream.getTracks().forEach((t) => t.stop()); await recorder.context.close();
    recorder.stream = null; button.classList.remove('recording'); button.textContent = '● Record';
    clearInterval(recorder.timer);
    const n = recorder.chunks.reduce((a, c) => a + c.length, 0);
    $('#record-status').textContent = `recorded ${(n / rate).toFixed(1)} s`;
    await inspectUpload(encodeWAV(recorder.chunks, rate), 'recording.wav');
    return;
  }
  recorder.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  recorder.context = new AudioContext();
  await recorder.context.audioWorklet.addModule('recorder-worklet.js');
  const source = recorder.context.createMediaStreamSource(recorder.stream);
  recorder.node = new AudioWorkletNode(recorder.context, 'auscult-recorder');
  recorder.chunks = [];
  recorder.node.port.onmessage = (e) => recorder.chunks.push(e.data);
  source.connect(recorder.node);
  recorder.started = Date.now();
  button.classList.add('recording'); button.textContent = '■ Stop';
  recorder.timer = setInterval(() => {
    $('#record-status').textContent = `recording ${((Date.now() - recorder.started) / 1000).toFixed(0)} s (30 s at most)`;
    if (Date.now() - recorder.started > 29500) toggleRecording().catch(showError);
  }, 250);
}
function encodeWAV(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0), buf = new ArrayBuffer(44 + n * 2), v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, 'RIFF'); v.setUint32(4, 36 + n * 2, true); str(8, 'WAVE'); str(12, 'fmt '); v.setUint32(16, 16, true);
  v.setUint16(20, 1, true); v.setUint16(22, 1, true); v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true);
  v.setUint16(32, 2, true); v.setUint16(34, 16, true); str(36, 'data'); v.setUint32(40, n * 2, true);
  let o = 44;
  for (const c of chunks) for (let i = 0; i < c.length; i++, o += 2) v.setInt16(o, Math.max(-1, Math.min(1, c[i])) * 32767, true);
  return new Blob([buf], { type: 'audio/wav' });
}

// ---------------------------------------------------------------- experiment views
/** A heatmap canvas: `values[i][j]` coloured by `colour`, row labels at the left, `tip(i, j)` on hover. */
function heatmap(values, rowLabels, colour, tip, id) {
  const rows = values.length, cols = rows ? values[0].length : 0, label = 170;
  const cw = Math.max(4, Math.min(36, Math.floor(900 / Math.max(1, cols)))), ch = 16;
  const canvas = document.createElement('canvas');
  canvas.className = 'heatmap'; if (id) canvas.id = id;
  canvas.width = label + cols * cw; canvas.height = rows * ch;
  const ctx = canvas.getContext('2d');
  ctx.font = '11px system-ui, sans-serif'; ctx.textBaseline = 'middle';
  for (let i = 0; i < rows; i++) {
    ctx.fillStyle = '#1d232b';
    const text = String(rowLabels[i]);
    ctx.fillText(text.length > 28 ? text.slice(0, 27) + '…' : text, 4, i * ch + ch / 2);
    for (let j = 0; j < cols; j++) {
      const v = values[i][j];
      ctx.fillStyle = v === null || v === undefined || Number.isNaN(v) ? '#e6e8eb' : css(colour(v));
      ctx.fillRect(label + j * cw, i * ch, cw - 1, ch - 1);
    }
  }
  const tooltip = $('#tooltip');
  canvas.addEventListener('mousemove', (ev) => {
    const rect = canvas.getBoundingClientRect();
    const j = Math.floor((ev.clientX - rect.left - label) / cw), i = Math.floor((ev.clientY - rect.top) / ch);
    if (i < 0 || i >= rows || j < 0 || j >= cols) { tooltip.hidden = true; return; }
    tooltip.textContent = tip(i, j);
    tooltip.style.left = (ev.clientX + 14) + 'px'; tooltip.style.top = (ev.clientY + 14) + 'px';
    tooltip.hidden = false;
  });
  canvas.addEventListener('mouseleave', () => { tooltip.hidden = true; });
  return canvas;
}
const maxAbs = (rows) => Math.max(1e-9, ...rows.flat().filter((v) => typeof v === 'number' && isFinite(v)).map(Math.abs));

function renderExperiment(name, data) {
  const root = $('#experiment-result');
  root.textContent = '';
  const h = document.createElement('h2'); root.append(h);
  if (Array.isArray(data) && data.length && 'condition' in data[0]) { h.textContent = `${name}: sweep of ${new Set(data.map((r) => r.condition)).size} conditions`; renderSweep(root, data); }
  else if (Array.isArray(data) && data.length && 'decoder_lens' in data[0]) { h.textContent = `${name}: lens of ${data.length} clip(s)`; renderLens(root, data); }
  else if (data && Array.isArray(data.grids)) { h.textContent = `${name}: activation patching (${data.metric})`; renderPatch(root, data); }
  else if (data && data.kind === 'heads' && Array.isArray(data.maps)) { h.textContent = `${name}: attention heads of ${data.model}`; renderHeads(root, data); }
  else if (data && data.kind === 'paths' && Array.isArray(data.conditions)) { h.textContent = `${name}: audio or language, ${data.model}`; renderPaths(root, data); }
  else if (data && data.kind === 'losses' && Array.isArray(data.points)) { h.textContent = `${name}: per-word losses of ${data.points.length} subjects`; renderLosses(root, data); }
  else throw new Error(`${name} is not a results.json of ablate, layers, lens, patch, heads, paths or losses`);
  document.body.dataset.experiment = 'shown';
}

function renderSweep(root, rows) {
  const clips = [...new Set(rows.map((r) => r.clip))];
  const clean = new Map(rows.filter((r) => r.condition === 'clean').map((r) => [r.clip, r]));
  const groups = new Map();
  for (const r of rows) { if (!groups.has(r.condition)) groups.set(r.condition, []); groups.get(r.condition).push(r); }
  const summary = [...groups].map(([condition, rs]) => {
    const refs = rs.reduce((a, r) => a + r.reference_words, 0), errs = rs.reduce((a, r) => a + r.word_errors, 0);
    const wers = rs.map((r) => r.wer).sort((a, b) => a - b), m = wers.length >> 1;
    const median = wers.length % 2 ? wers[m] : (wers[m - 1] + wers[m]) / 2;
    // Readable: per-clip WER at most 50 %, no repetition loop, not cut at the length limit (as auscult's summaries).
    const readable = rs.filter((r) => r.wer <= 0.5 && r.max_repeat < 3 && !r.hit_limit).length / rs.length;
    return { condition, clips: rs.length, wer: refs ? errs / refs : null, median_wer: median, readable,
      ce_delta: rs.reduce((a, r) => a + (r.ce_delta || 0), 0) / rs.length,
      changed: rs.filter((r) => clean.has(r.clip) && r.text !== clean.get(r.clip).text).length,
      limit: rs.filter((r) => r.hit_limit).length, rows: rs };
  });
  const filter = document.createElement('input'); filter.id = 'sweep-filter'; filter.placeholder = 'filter conditions';
  root.append(filter);
  const table = document.createElement('table'); table.className = 'results'; table.id = 'sweep-table';
  const columns = [['condition', 'condition'], ['clips', 'clips'], ['wer', 'corpus WER'], ['median_wer', 'median WER'],
    ['readable', 'readable'], ['ce_delta', 'mean Δ cross-entropy'],
    ['changed', 'transcripts changed'], ['limit', 'hit length limit']];
  let sortKey = 'ce_delta', descending = true;
  const fmtCell = (k, v) => ['wer', 'median_wer'].includes(k) ? (v === null ? 'n/a' : (v * 100).toFixed(2) + ' %')
    : k === 'readable' ? (v * 100).toFixed(0) + ' %' : k === 'ce_delta' ? v.toFixed(3) : String(v);
  const draw = () => {
    table.textContent = '';
    const head = table.insertRow();
    for (const [k, label] of columns) {
      const th = document.createElement('th'); th.textContent = label + (k === sortKey ? (descending ? ' ▼' : ' ▲') : '');
      th.dataset.key = k;
      th.addEventListener('click', () => { if (sortKey === k) descending = !descending; else { sortKey = k; descending = k !== 'condition'; } draw(); });
      head.append(th);
    }
    const q = filter.value.toLowerCase();
    const shown = summary.filter((s) => s.condition.toLowerCase().includes(q)).sort((a, b) => {
      const x = a[sortKey], y = b[sortKey], c = typeof x === 'string' ? x.localeCompare(y) : (x ?? -1) - (y ?? -1);
      return descending ? -c : c;
    });
    for (const s of shown) {
      const tr = table.insertRow(); tr.dataset.condition = s.condition;
      for (const [k] of columns) tr.insertCell().textContent = fmtCell(k, s[k]);
      tr.addEventListener('click', () => {
        const next = tr.nextSibling;
        if (next && next.classList.contains('transcripts')) { next.remove(); tr.classList.remove('open'); return; }
        tr.classList.add('open');
        const detail = document.createElement('tr'); detail.className = 'transcripts';
        const td = detail.insertCell(); td.colSpan = columns.length; td.style.textAlign = 'left';
        for (const r of s.rows) {
          const p = document.createElement('p');
          p.textContent = `${r.clip}: “${r.text}”` + (clean.has(r.clip) && r.condition !== 'clean' ? `   (clean: “${clean.get(r.clip).text}”)` : '');
          td.append(p);
        }
        tr.after(detail);
      });
    }
  };
  filter.addEventListener('input', draw);
  draw();
  root.append(table);
  const conditions = summary.map((s) => s.condition);
  const values = conditions.map((c) => clips.map((clip) => { const r = groups.get(c).find((x) => x.clip === clip); return r ? r.ce_delta : null; }));
  const scale = maxAbs(values);
  const cap = document.createElement('h3'); cap.textContent = 'Δ cross-entropy per condition (rows) and clip (columns); hover for the transcript';
  root.append(cap, heatmap(values, conditions, (v) => diverging(v / scale), (i, j) => {
    const r = groups.get(conditions[i]).find((x) => x.clip === clips[j]);
    return r ? `${conditions[i]} · ${clips[j]}\nΔCE ${fmt(r.ce_delta)} · WER ${(r.wer * 100).toFixed(1)} %\n“${r.text}”` : 'not run';
  }, 'sweep-heatmap'));
}

function renderLens(root, clips) {
  for (const c of clips) {
    const h = document.createElement('h3'); h.textContent = `${c.clip}: decoder logit lens (probability of the final prediction at each layer)`;
    const layers = c.decoder_lens.map((l) => l.layer);
    const values = c.decoder_lens.map((l) => l.final_prob);
    root.append(h, heatmap(values, layers, (v) => magma(v), (i, j) => {
      const l = c.decoder_lens[i];
      return `${l.layer} · position ${j} (${JSON.stringify(c.token_text[j])})\nP(final) ${fmt(l.final_prob[j])} · rank ${l.final_rank[j]}\ntop-1 here: ${JSON.stringify(l.top1[j])}`;
    }, 'lens-heatmap'));
    if (c.attribution) {
      const a = c.attribution, scale = maxAbs(a.values);
      const t = document.createElement('h3'); t.textContent = `${c.clip}: direct logit attribution per component (rows) and position`;
      root.append(t, heatmap(a.values, a.components, (v) => diverging(v / scale),
        (i, j) => `${a.components[i]} · position ${j} (${JSON.stringify(c.token_text[j])})\n${fmt(a.values[i][j])} of logit ${fmt(a.logits[j])}`));
    }
  }
}

/** `auscult heads`: the discovered alignment heads, then one layer × head map per score. */
function renderHeads(root, r) {
  const a = r.alignment;
  const info = document.createElement('p'); info.className = 'muted';
  info.textContent = `${r.clips.length} clip(s) · alignment heads ranked by how well each alone times ${a.words} words`
    + (a.precision_at_k === undefined || a.precision_at_k === null ? '' : ` · precision at ${a.k} against openai-whisper's list: ${a.precision_at_k.toFixed(2)}`);
  const table = document.createElement('table'); table.className = 'results'; table.id = 'heads-table';
  const head = table.insertRow();
  for (const label of ['rank', 'head', 'agreement', 'error (ms)', 'monotonicity', "openai-whisper's list"]) {
    const th = document.createElement('th'); th.textContent = label; head.append(th);
  }
  a.ranked.slice(0, Math.max(10, 2 * a.k)).forEach((c, i) => {
    const tr = table.insertRow(); tr.dataset.head = `L${c.layer}.H${c.head}`;
    for (const v of [i + 1, `L${c.layer}.H${c.head}`, c.agreement.toFixed(3), c.error_ms.toFixed(0),
      c.monotonicity === null || c.monotonicity === undefined ? 'n/a' : c.monotonicity.toFixed(3),
      a.known ? (c.known ? 'yes' : 'no') : 'n/a']) tr.insertCell().textContent = String(v);
  });
  root.append(info, table);
  const kinds = [['decoder_self', 'Decoder self-attention'], ['encoder_self', 'Encoder self-attention'], ['cross', 'Cross-attention']];
  for (const [kind, title] of kinds) {
    const maps = r.maps.filter((m) => m.attention === kind);
    if (!maps.length) continue;
    const h = document.createElement('h3'); h.textContent = title; root.append(h);
    const grid = document.createElement('div'); grid.className = 'heads-maps';
    for (const m of maps) {
      const finite = m.values.flat().filter((v) => typeof v === 'number' && isFinite(v));
      const lo = Math.min(0, ...finite), hi = Math.max(1e-9, ...finite), scale = maxAbs(m.values);
      const colour = lo < 0 ? (v) => diverging(v / scale) : (v) => magma(v / hi);
      const box = document.createElement('div'); box.className = 'heads-map';
      const cap = document.createElement('p'); cap.className = 'muted'; cap.title = m.description;
      cap.textContent = m.name;
      box.append(cap, heatmap(m.values, m.values.map((_, l) => `layer ${l}`), colour,
        (l, hh) => `L${l}.H${hh} ${m.name}: ${m.values[l][hh] === null ? 'n/a' : fmt(m.values[l][hh])}\n${m.description}`,
        `heads-${kind}-${m.name}`));
      grid.append(box);
    }
    root.append(grid);
  }
}

/** A results table: `header` labels, then `rows` of cell texts; `key(i)` goes to each row's data-key. */
function resultTable(id, header, rows, key) {
  const table = document.createElement('table'); table.className = 'results'; table.id = id;
  const head = table.insertRow();
  for (const label of header) { const th = document.createElement('th'); th.textContent = label; head.append(th); }
  rows.forEach((cells, i) => {
    const tr = table.insertRow(); if (key) tr.dataset.key = key(i);
    for (const v of cells) tr.insertCell().textContent = v;
  });
  return table;
}

/** `auscult paths`: per-token loss per condition, path patching, repeated and new tokens by input,
 * then per clip each component's direct contribution per token. */
function renderPaths(root, r) {
  const table = resultTable('paths-table', ['condition', 'loss (nats / token)', 'top-1', 'what it is'],
    r.conditions.map((c) => [c.name, c.loss.toFixed(3), (100 * c.accuracy).toFixed(1) + ' %', c.description]),
    (i) => r.conditions[i].name);
  const info = document.createElement('p'); info.className = 'muted';
  info.textContent = `${r.conditions[0].tokens} tokens of the ${r.text}s; direct contributions add up within ${fmt(r.sum_error, 2)}`;
  root.append(info, table);
  const short = (name) => name.replace('decoder.blocks.', 'L').replace('.hook_', ' ').replace('_out', '');
  const labels = r.components.map((c) => short(c.name));
  const sign = (v) => (v >= 0 ? '+' : '') + v.toFixed(3);
  if (Array.isArray(r.patching) && r.patching.length) {
    const cap = document.createElement('h3');
    cap.textContent = 'Path patching: each component given its value on silence (loss change, nats / token)';
    root.append(cap, resultTable('paths-patching', ['component', 'total', 'direct', 'through later blocks'],
      r.patching.map((p) => [p.name, sign(p.total), sign(p.direct), sign(p.indirect)]), (i) => r.patching[i].name));
  }
  if (Array.isArray(r.groups) && r.groups.length) {
    const cap = document.createElement('h3');
    cap.textContent = 'Repeated and new tokens by input (a repeat continues a token pair seen earlier)';
    const top = (values, names) => {
      let best = 0; values.forEach((v, i) => { if (Math.abs(v) > Math.abs(values[best])) best = i; });
      return values.length ? `${short(names[best])} ${sign(values[best])}` : '';
    };
    root.append(cap, resultTable('paths-groups',
      ['input', 'tokens', ...r.conditions.map((c) => `loss: ${c.name}`), 'largest direct', 'largest total patch'],
      r.groups.map((g) => [`${g.source} · ${g.repeated ? 'repeated' : 'new'}`, String(g.tokens),
        ...g.loss.map((v) => v.toFixed(3)), top(g.direct, r.components.map((c) => c.name)),
        top(g.patch_total, r.patching.map((p) => p.name))]),
      (i) => `${r.groups[i].source}|${r.groups[i].repeated}`));
  }
  const select = document.createElement('select'); select.id = 'paths-clip';
  r.clips.forEach((c, i) => {
    const o = document.createElement('option'); o.value = i; o.textContent = c.clip; select.append(o);
  });
  const holder = document.createElement('div');
  const draw = () => {
    const c = r.clips[Number(select.value)], scale = maxAbs(c.direct);
    holder.textContent = '';
    const cap = document.createElement('h3'); cap.textContent = `${c.clip}: direct contribution to logit(target) − E_p[logit] per component (rows) and token`;
    const repeats = document.createElement('p'); repeats.className = 'muted'; repeats.id = 'paths-repeats';
    const n = (c.repeated || []).filter(Boolean).length;
    repeats.textContent = `${n} of ${c.tokens.length} tokens repeat a token pair seen earlier in the text`;
    holder.append(cap, repeats, heatmap(c.direct, labels, (v) => diverging(v / scale), (i, j) =>
      `${labels[i]} · ${JSON.stringify(c.tokens[j])}${c.repeated && c.repeated[j] ? ' (repeated)' : ''}: ${fmt(c.direct[i][j])}\nloss: ` +
      r.conditions.map((k, m) => `${k.name} ${fmt(c.losses[m][j])}`).join(', '),
      'paths-heatmap'));
  };
  select.addEventListener('change', draw);
  root.append(select, holder);
  draw();
}

/** `auscult losses`: each subject's mean loss and place on the principal components, then every word's loss. */
function renderLosses(root, r) {
  const table = document.createElement('table'); table.className = 'results'; table.id = 'losses-table';
  const head = table.insertRow();
  for (const label of ['subject', 'mean loss per word', ...r.components.map((c, k) => `PC${k + 1} (${Math.round(100 * c.explained)} %)`)]) {
    const th = document.createElement('th'); th.textContent = label; head.append(th);
  }
  for (const p of r.points) {
    const tr = table.insertRow(); tr.dataset.subject = p.name;
    for (const v of [p.name, p.mean_loss.toFixed(3), ...p.coordinates.map((x) => (x >= 0 ? '+' : '') + x.toFixed(3))]) tr.insertCell().textContent = v;
  }
  root.append(table);
  r.components.forEach((c, k) => {
    const p = document.createElement('p'); p.className = 'muted';
    p.textContent = `PC${k + 1}: + ` + c.positive.slice(0, 6).map((w) => `“${w.word}”`).join(' ') + '   − ' + c.negative.slice(0, 6).map((w) => `“${w.word}”`).join(' ');
    root.append(p);
  });
  const hi = Math.max(1e-9, ...r.losses.flat());
  const cap = document.createElement('h3'); cap.textContent = 'Loss per word (rows: subjects; hover for the word)';
  root.append(cap, heatmap(r.losses, r.points.map((p) => p.name), (v) => magma(v / hi),
    (i, j) => `${r.points[i].name} · ${r.word_labels[j]}: ${fmt(r.losses[i][j])} nats`, 'losses-heatmap'));
}

function renderPatch(root, p) {
  const info = document.createElement('p'); info.className = 'muted';
  info.textContent = `clean “${p.clean_text}” (${fmt(p.clean_value)}) · corrupted by ${p.corruption}: “${p.corrupt_text}” (${fmt(p.corrupt_value)})`;
  root.append(info);
  for (const g of p.grids) {
    const h = document.createElement('h3'); h.textContent = `${g.hook}: fraction of the metric restored`;
    root.append(h, heatmap(g.restored, g.rows, (v) => diverging(v), (i, j) =>
      `${g.rows[i]} · ${g.cols[j]}\nrestored ${fmt(g.restored[i][j])} (metric ${fmt(g.values[i][j])})`));
  }
}

// ---------------------------------------------------------------- routing
async function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const view = ['inspect', 'experiments'].includes(parts[0]) ? parts[0] : 'features';
  if (parts[1] && state.indexes.some((i) => i.id === parts[1]) && parts[1] !== state.index) await setIndex(parts[1]);
  for (const v of ['features', 'inspect', 'experiments']) {
    $('#view-' + v).hidden = view !== v;
    $('#tab-' + v).classList.toggle('active', view === v);
  }
  if (view === 'features' && parts[2] !== undefined && parts[2] !== '') await showFeature(state.index, Number(parts[2]));
  if (view === 'inspect' && parts[2] === 'clip' && parts[3]) { $('#clip-select').value = parts[3]; await inspectClip(parts[3]); }
  if (document.body.dataset.state === 'loading') document.body.dataset.state = 'ready';
}

async function setIndex(id) {
  state.index = id;
  $('#index-select').value = id;
  const info = state.indexes.find((i) => i.id === id);
  $('#model-info').textContent = `${info.kind === 'sae' ? 'SAE latents' : 'neurons'} of ${info.hook} · ${info.width} features · ${info.clips} clips · ${info.model}`;
  await Promise.all([loadFeatureList(), loadClips()]);
}

async function start() {
  state.indexes = await api('/api/indexes');
  const select = $('#index-select');
  for (const i of state.indexes) { const o = document.createElement('option'); o.value = i.id; o.textContent = `${i.id} (${i.kind})`; select.append(o); }
  select.addEventListener('change', () => { location.hash = `#/features/${enc(select.value)}`; });
  $('#sort-select').addEventListener('change', () => loadFeatureList().catch(showError));
  $('#feature-search').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = $('#search-input').value.trim();
    if (q !== '' && !isNaN(Number(q))) { location.hash = `#/features/${enc(state.index)}/${Number(q)}`; return; }
    state.search = q;
    loadFeatureList().catch(showError);
  });
  $('#clip-select').addEventListener('change', (e) => { if (e.target.value) location.hash = `#/inspect/${enc(state.index)}/clip/${enc(e.target.value)}`; });
  // A changed prompt or prefix transcribes the chosen bundled clip again.
  for (const key of ['prompt', 'prefix']) {
    $(`#inspect-${key}`).addEventListener('change', () => {
      const name = $('#clip-select').value;
      if (name) inspectClip(name).catch(showError);
    });
  }
  $('#upload-input').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) inspectUpload(f, f.name).catch(showError); });
  $('#record-button').addEventListener('click', () => toggleRecording().catch(showError));
  $('#results-input').addEventListener('change', (e) => {
    const f = e.target.files[0];
    if (!f) return;
    f.text().then((text) => renderExperiment(f.name, JSON.parse(text))).catch(showError);
  });
  window.addEventListener('hashchange', () => route().catch(showError));
  await setIndex(state.indexes[0].id);
  await route();
}

start().catch((e) => { showError(e); document.body.dataset.state = 'error'; });
