/**
 * Serialising a rewritten ONNX graph without copying its weights: each initializer whose bytes
 * were decoded from the model file becomes an external-data reference to its place in that file,
 * so the model handed to onnxruntime is a few kilobytes and onnxruntime reads the weights from the
 * file as it would have anyway. Without this, a rewritten ViT-B/32 vision tower is 350 MB encoded
 * again in JavaScript and held twice more while the session loads (3.6 GB for a ViT-L/14).
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type ModelProto = onnxProto.onnx.IModelProto;

/** Initializers smaller than this stay inline (shape constants, scalars). */
const INLINE_BYTES = 1024;

/**
 * Encodes `model`, decoded from `fileBytes` (the bytes of the file named `location`), with its
 * large initializers pointing into that file. Open the result with the session config
 * `session.model_external_initializers_file_folder_path` set to the file's folder.
 */
export function encodeWithWeightsInFile(
  model: ModelProto,
  fileBytes: Uint8Array,
  location: string,
): Uint8Array {
  for (const tensor of model.graph?.initializer ?? []) {
    const raw = tensor.rawData;
    if (!raw || raw.byteLength < INLINE_BYTES || raw.buffer !== fileBytes.buffer) continue;
    const offset = raw.byteOffset - fileBytes.byteOffset;
    if (offset < 0 || offset + raw.byteLength > fileBytes.byteLength) continue;
    tensor.rawData = null;
    tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    tensor.externalData = [
      { key: "location", value: location },
      { key: "offset", value: String(offset) },
      { key: "length", value: String(raw.byteLength) },
    ];
  }
  return onnx.ModelProto.encode(model).finish();
}
