// Auscult Studio's recorder: copies the microphone's first channel to the page, block by block.
class AuscultRecorder extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) this.port.postMessage(new Float32Array(input[0]));
    return true;
  }
}
registerProcessor('auscult-recorder', AuscultRecorder);
