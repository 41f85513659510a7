// Task loaders: one function per task turns its file into (context, continuation) choices
// with lm-eval-harness's prompt format (the source of each format is cited at its
// function). Every problem in a file is reported as "<file>:<line>: <problem>".
#include "eval/tasks.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/check.h"
#include "common/text_file.h"

namespace h2o {
namespace {

using nlohmann::json;

// One JSON value of a file and the line it starts on, for error messages.
struct Record {
  json value;
  size_t line = 0;
  const std::string* file = nullptr;

  [[noreturn]] void fail_here(const std::string& problem) const { fail("{}:{}: {}", *file, line, problem); }

  const json& field(const char* key) const {
    if (!value.is_object()) fail_here("expected a JSON object");
    auto it = value.find(key);
    if (it == value.end()) fail_here(fmt::format("missing field \"{}\"", key));
    return *it;
  }
  std::string str(const char* key) const {
    const json& v = field(key);
    if (!v.is_string()) fail_here(fmt::format("field \"{}\" must be a string, got {}", key, v.dump()));
    return v.get<std::string>();
  }
  // The item's id: the field `key` (a string or an integer) if present, else `fallback`.
  std::string id(const char* key, size_t fallback) const {
    if (!value.is_object() || !value.contains(key)) return std::to_string(fallback);
    const json& v = value.at(key);
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return std::to_string(v.get<long long>());
    fail_here(fmt::format("field \"{}\" must be a string or an integer, got {}", key, v.dump()));
  }
};

size_t count_newlines(std::string_view s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// Parses `text` (which starts on line `line` of `file`); a syntax error names the line it is on.
json parse_json(std::string_view text, const std::string& file, size_t line) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    const size_t at = std::min(text.size(), e.byte > 0 ? static_cast<size_t>(e.byte - 1) : size_t{0});
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..." -> after "column N: "
    const size_t colon = what.find(": ", what.find("column"));
    if (colon != std::string::npos) what = what.substr(colon + 2);
    fail("{}:{}: bad JSON: {}", file, line + count_newlines(text.substr(0, at)), what);
  }
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

// Lines of a text file (without "\n" or a trailing "\r"), numbered from 1.
std::vector<std::pair<size_t, std::string>> read_lines(const std::string& path) {
  const std::string text = read_text_file(path, "task file");
  std::vector<std::pair<size_t, std::string>> lines;
  size_t start = 0, line = 1;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string s = text.substr(start, end - start);
    if (!s.empty() && s.back() == '\r') s.pop_back();
    lines.emplace_back(line++, std::move(s));
    start = end + 1;
  }
  return lines;
}

// One JSON object per non-blank line.
std::vector<Record> read_jsonl(const std::string& path) {
  std::vector<Record> out;
  for (const auto& [line, text] : read_lines(path)) {
    if (is_blank(text)) continue;
    out.push_back({parse_json(text, path, line), line, &path});
  }
  if (out.empty()) fail("{}: no items", path);
  return out;
}

// The elements of a top-level JSON array with the line each starts on. nlohmann::json keeps
// no positions, so the array is split here (brackets counted outside strings) and each
// element parsed on its own.
std::vector<Record> read_json_array(const std::string& path) {
  const std::string text = read_text_file(path, "task file");
  size_t i = 0, line = 1;
  auto skip_space = [&] {
    for (; i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'); ++i)
      if (text[i] == '\n') ++line;
  };
  skip_space();
  if (i >= text.size() || text[i] != '[') fail("{}:{}: expected a JSON array", path, line);
  ++i;
  std::vector<Record> out;
  for (;;) {
    skip_space();
    if (i >= text.size()) fail("{}:{}: unterminated JSON array", path, line);
    if (text[i] == ']' && out.empty()) {
      ++i;
      break;
    }
    const size_t start = i, start_line = line;
    int depth = 0;
    bool in_string = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '\n') ++line;
      if (in_string) {
        if (c == '\\') {
          ++i;  // an escaped character never ends the string
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && depth > 0) {
        --depth;
      } else if (depth == 0 && (c == ',' || c == ']')) {
        break;
      }
    }
    if (i >= text.size()) fail("{}:{}: unterminated JSON array", path, start_line);
    out.push_back({parse_json(std::string_view(text).substr(start, i - start), path, start_line), start_line, &path});
    if (text[i++] == ']') break;
  }
  skip_space();
  if (i < text.size()) fail("{}:{}: unexpected text after the JSON array", path, line);
  if (out.empty()) fail("{}: no items", path);
  return out;
}

// Python's str.strip() for ASCII whitespace.
std::string strip(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

std::string rstrip(std::string_view s, std::string_view chars) {
  const size_t e = s.find_last_not_of(chars);
  return e == std::string_view::npos ? std::string() : std::string(s.substr(0, e + 1));
}

// " " + text: lm-eval's target delimiter before a choice. (Built by append: GCC 12 warns
// falsely, -Wrestrict, about "literal" + std::string&&.)
std::string spaced(std::string_view text) {
  std::string s(1, ' ');
  s.append(text);
  return s;
}

McItem two_way(std::string id, const std::string& ctx0, const std::string& cont0, const std::string& ctx1,
               const std::string& cont1, int label) {
  return {std::move(id), {{ctx0, cont0}, {ctx1, cont1}}, label};
}

// COPA. lm-eval-harness lm_eval/tasks/super_glue/copa/utils.py: doc_to_text =
// premise.strip()[:-1] + " because" (cause) / " therefore" (effect); choices
// convert_choice(choice) = first letter lower-cased, after the " " target delimiter.
McTask load_copa(const std::string& path) {
  McTask task{"copa", path, {}};
  for (const Record& r : read_jsonl(path)) {
    const std::string premise = strip(r.str("premise"));
    const std::string question = r.str("question");
    if (premise.empty()) r.fail_here("empty premise");
    if (question != "cause" && question != "effect")
      r.fail_here(fmt::format("question must be \"cause\" or \"effect\", got \"{}\"", question));
    const std::string ctx = premise.substr(0, premise.size() - 1) + (question == "cause" ? " because" : " therefore");
    auto convert = [&](const char* key) {
      std::string c = r.str(key);
      if (c.empty()) r.fail_here(fmt::format("empty \"{}\"", key));
      // Python's lower() on the first character; non-ASCII first letters are left as they are.
      if (static_cast<unsigned char>(c[0]) < 0x80)
        c[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(c[0])));
      return spaced(c);
    };
    const json& label = r.field("label");
    if (!label.is_number_integer() || (label.get<long long>() != 0 && label.get<long long>() != 1))
      r.fail_here(fmt::format("label must be 0 or 1, got {}", label.dump()));
    task.items.push_back(
        two_way(r.id("idx", task.items.size()), ctx, convert("choice1"), ctx, convert("choice2"), label.get<int>()));
  }
  return task;
}

// PIQA. lm-eval-harness lm_eval/tasks/piqa/piqa.yaml: doc_to_text "Question: {{goal}}\nAnswer:",
// doc_to_choice [sol1, sol2], doc_to_target label (one per line of the labels file).
McTask load_piqa(const std::string& path, const std::string& labels_path) {
  McTask task{"piqa", path, {}};
  const std::vector<Record> records = read_jsonl(path);
  std::vector<int> labels;
  for (const auto& [line, text] : read_lines(labels_path)) {
    const std::string v = strip(text);
    if (v.empty()) continue;
    if (v != "0" && v != "1") fail("{}:{}: label must be 0 or 1, got \"{}\"", labels_path, line, v);
    labels.push_back(v == "1" ? 1 : 0);
  }
  if (labels.size() != records.size())
    fail("{}: {} labels for the {} items of {}", labels_path, labels.size(), records.size(), path);
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    const std::string ctx = "Question: " + r.str("goal") + "\nAnswer:";
    task.items.push_back(two_way(std::to_string(i), ctx, spaced(r.str("sol1")), ctx, spaced(r.str("sol2")), labels[i]));
  }
  return task;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> cols;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    cols.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return cols;
    start = tab + 1;
  }
}

// OpenBookQA. lm-eval-harness lm_eval/tasks/openbookqa/openbookqa.yaml: doc_to_text
// question_stem, doc_to_choice choices.text, target = index of answerKey in choices.label.
// The TSV holds the choices as one column "(A) text (B) text (C) text (D) text".
McTask load_openbookqa(const std::string& path) {
  McTask task{"openbookqa", path, {}};
  const auto lines = read_lines(path);
  if (lines.empty()) fail("{}: empty file", path);
  const std::vector<std::string> header = split_tabs(lines[0].second);
  auto column = [&](const char* name) {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail("{}:1: header has no column \"{}\"", path, name);
    return static_cast<size_t>(it - header.begin());
  };
  const size_t c_id = column("ID"), c_stem = column("Question Stem"), c_choices = column("Choices"),
               c_answer = column("Answer Key");
  for (size_t li = 1; li < lines.size(); ++li) {
    const auto& [line, text] = lines[li];
    if (is_blank(text)) continue;
    const std::vector<std::string> cols = split_tabs(text);
    if (cols.size() != header.size())
      fail("{}:{}: {} columns, the header has {}", path, line, cols.size(), header.size());
    const std::string& choices = cols[c_choices];
    if (choices.rfind("(A) ", 0) != 0) fail("{}:{}: choices must start with \"(A) \"", path, line);
    McItem item{cols[c_id], {}, -1};
    const std::string stem = cols[c_stem];
    std::string letters;
    size_t pos = 4;
    for (char letter = 'A';; ++letter) {
      const std::string next_marker = fmt::format(" ({}) ", static_cast<char>(letter + 1));
      const size_t next = choices.find(next_marker, pos);
      const std::string text_i =
          strip(std::string_view(choices).substr(pos, next == std::string::npos ? std::string::npos : next - pos));
      if (text_i.empty()) fail("{}:{}: empty choice ({})", path, line, letter);
      item.choices.push_back({stem, spaced(text_i)});
      letters += letter;
      if (next == std::string::npos) break;
      pos = next + next_marker.size();
    }
    if (item.choices.size() < 2) fail("{}:{}: fewer than two choices", path, line);
    const std::string key = strip(cols[c_answer]);
    const size_t at = key.size() == 1 ? letters.find(key[0]) : std::string::npos;
    if (at == std::string::npos)
      fail("{}:{}: answer key \"{}\" is not one of the choices {}", path, line, key, letters);
    item.label = static_cast<int>(at);
    task.items.push_back(std::move(item));
  }
  if (task.items.empty()) fail("{}: no items", path);
  return task;
}

// WinoGrande, partial scoring. lm-eval-harness lm_eval/tasks/winogrande/preprocess_winogrande.py:
// doc_to_choice = sentence[:idx] + option for each option (idx = index of "_"), doc_to_target =
// sentence[idx+1:].strip() after the " " delimiter; every option's context scores the same
// continuation. Label: answer "1" -> 0, "2" -> 1.
McTask load_winogrande(const std::string& path) {
  McTask task{"winogrande", path, {}};
  for (const Record& r : read_jsonl(path)) {
    const std::string sentence = r.str("sentence");
    const size_t blank = sentence.find('_');
    if (blank == std::string::npos) r.fail_here("sentence has no \"_\"");
    const json& answer = r.field("answer");
    const std::string a = answer.is_string()           ? answer.get<std::string>()
                          : answer.is_number_integer() ? std::to_string(answer.get<long long>())
                                                       : std::string();
    if (a != "1" && a != "2") r.fail_here(fmt::format("answer must be \"1\" or \"2\", got {}", answer.dump()));
    const std::string prefix = sentence.substr(0, blank);
    const std::string cont = spaced(strip(std::string_view(sentence).substr(blank + 1)));
    task.items.push_back(two_way(r.id("idx", task.items.size()), prefix + r.str("option1"), cont,
                                 prefix + r.str("option2"), cont, a == "1" ? 0 : 1));
  }
  return task;
}

// RTE. lm-eval-harness lm_eval/tasks/super_glue/rte/default.yaml: doc_to_text
// "{{premise}}\nQuestion: {{hypothesis}} True or False?\nAnswer:", doc_to_choice ['True', 'False'],
// doc_to_target label (0 = entailment = True).
McTask load_rte(const std::string& path) {
  McTask task{"rte", path, {}};
  for (const Record& r : read_jsonl(path)) {
    const std::string ctx = r.str("premise") + "\nQuestion: " + r.str("hypothesis") + " True or False?\nAnswer:";
    const json& label = r.field("label");
    int l = -1;
    if (label == "entailment" || label == 0) l = 0;
    if (label == "not_entailment" || label == 1) l = 1;
    if (l < 0)
      r.fail_here(fmt::format("label must be \"entailment\" or \"not_entailment\" (or 0/1), got {}", label.dump()));
    task.items.push_back(two_way(r.id("idx", task.items.size()), ctx, " True", ctx, " False", l));
  }
  return task;
}

// MathQA's options string split as lm-eval-harness lm_eval/tasks/mathqa/utils.py does:
// re.findall(r"[abcd] \) .*?, |e \) .*?$", options), each match c -> c[4:].rstrip(" ,").
// Hand-written so the regex's leftmost, shortest-match semantics are explicit.
std::vector<std::string> mathqa_choices(const std::string& s) {
  std::vector<std::string> out;
  auto marker_at = [&](size_t p) { return s.compare(p + 1, 3, " ) ") == 0; };
  size_t p = 0;
  while (p < s.size()) {
    const char c = s[p];
    if (c >= 'a' && c <= 'd' && marker_at(p)) {
      const size_t end = s.find(", ", p + 4);
      // "." does not match a newline: the shortest match must not cross one.
      if (end != std::string::npos && s.find('\n', p + 4) >= end) {
        out.push_back(rstrip(std::string_view(s).substr(p + 4, end + 2 - (p + 4)), " ,"));
        p = end + 2;
        continue;
      }
    } else if (c == 'e' && marker_at(p)) {
      std::string_view rest = std::string_view(s).substr(p + 4);
      if (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);  // "$" also matches before a final newline
      if (rest.find('\n') == std::string_view::npos) {
        out.push_back(rstrip(rest, " ,"));
        break;
      }
    }
    ++p;
  }
  return out;
}

// MathQA. lm-eval-harness lm_eval/tasks/mathqa/mathqa.yaml (the "Question: {{Problem}}\nAnswer:"
// version): doc_to_choice from the options string (mathqa_choices), target = index of
// `correct` in a..e.
McTask load_mathqa(const std::string& path) {
  McTask task{"mathqa", path, {}};
  for (const Record& r : read_json_array(path)) {
    const std::string ctx = "Question: " + r.str("Problem") + "\nAnswer:";
    const std::vector<std::string> choices = mathqa_choices(r.str("options"));
    if (choices.size() < 2)
      r.fail_here(fmt::format("options: found {} choices, expected \"a ) .. , b ) .. , e ) ..\"", choices.size()));
    const std::string correct = r.str("correct");
    const size_t label = correct.size() == 1 ? std::string_view("abcde").find(correct[0]) : std::string::npos;
    if (label == std::string::npos || label >= choices.size())
      r.fail_here(fmt::format("correct must name one of the {} choices (a..{}), got \"{}\"", choices.size(),
                              static_cast<char>('a' + choices.size() - 1), correct));
    McItem item{std::to_string(task.items.size()), {}, static_cast<int>(label)};
    for (const std::string& c : choices) item.choices.push_back({ctx, spaced(c)});
    task.items.push_back(std::move(item));
  }
  return task;
}

}  // namespace

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names{"copa", "piqa", "openbookqa", "winogrande", "rte", "mathqa"};
  return names;
}

McTask load_task(const std::string& name, const std::string& data_dir) {
  const std::string dir = data_dir.empty() || data_dir.back() == '/' ? data_dir : data_dir + "/";
  if (name == "copa") return load_copa(dir + "copa_val.jsonl");
  if (name == "piqa") return load_piqa(dir + "piqa_valid.jsonl", dir + "piqa_valid-labels.lst");
  if (name == "openbookqa") return load_openbookqa(dir + "openbookqa_test.tsv");
  if (name == "winogrande") return load_winogrande(dir + "winogrande_dev_1267.jsonl");
  if (name == "rte") return load_rte(dir + "rte_val.jsonl");
  if (name == "mathqa") return load_mathqa(dir + "mathqa_test.json");
  fail("unknown task '{}' (choose from copa, piqa, openbookqa, winogrande, rte, mathqa)", name);
}

}  // namespace h2o
