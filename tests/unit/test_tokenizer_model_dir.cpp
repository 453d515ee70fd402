// Model-directory helpers: loading <dir>/tokenizer.json, the chat control-token ids, and installing
// the bundled V4 tokenizer into a directory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include <unistd.h>

#include "test_tokenizer_util.h"
#include "tokenizer/model_dir.h"

namespace dsv4 {
namespace {

namespace fs = std::filesystem;

TEST(TokenizerModelDir, InstallThenLoad) {
    const fs::path dir = fs::temp_directory_path() / fmt::format("dsv4_tok_test_{}", ::getpid());
    fs::remove_all(dir);
    auto missing = load_tokenizer_from_model_dir(dir.string());
    ASSERT_FALSE(missing.is_ok());
    EXPECT_NE(missing.message().find("no tokenizer.json"), std::string::npos);

    ASSERT_TRUE(install_bundled_tokenizer(dir.string()).is_ok());
    auto tok = load_tokenizer_from_model_dir(dir.string());
    ASSERT_TRUE(tok.is_ok()) << tok.message();
    EXPECT_EQ(tok->encode("Hello, world!", true), (std::vector<int32_t>{19923, 14, 2058, 3}));
    fs::remove_all(dir);
}

TEST(TokenizerModelDir, BundledPathIsTheFixtureAndEnvOverrides) {
    EXPECT_TRUE(fs::equivalent(bundled_tokenizer_path(), test::v4_tokenizer_path()));
    ::setenv("DSV4_TOKENIZER", "/nonexistent.json", 1);
    EXPECT_EQ(bundled_tokenizer_path(), "/nonexistent.json");
    const Status s = install_bundled_tokenizer((fs::temp_directory_path() / "dsv4_never_written").string());
    ::unsetenv("DSV4_TOKENIZER");
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("DSV4_TOKENIZER"), std::string::npos) << s.message();
}

TEST(TokenizerModelDir, ChatTokenIds) {
    auto ids = chat_token_ids(test::v4_tokenizer());
    ASSERT_TRUE(ids.is_ok()) << ids.message();
    EXPECT_EQ(ids->bos, 0);
    EXPECT_EQ(ids->eos, 1);
    EXPECT_EQ(ids->user, 128803);
    EXPECT_EQ(ids->assistant, 128804);
    EXPECT_EQ(ids->think_begin, 128821);
    EXPECT_EQ(ids->think_end, 128822);
    EXPECT_EQ(ids->dsml, 128825);
}

}  // namespace
}  // namespace dsv4
