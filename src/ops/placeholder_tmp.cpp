// placeholder so the library has a source; removed when the layer has code
namespace dsv4 {
void placeholder_ops() {}
}  // namespace dsv4
