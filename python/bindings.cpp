// The Python module `h2o._h2o` (docs/python.md): a thin front end over the library, like
// the CLI in apps/. It converts arguments and results (token lists, numpy arrays) and
// turns h2o::Error into the Python exception h2o.Error; everything else is library calls.
// Long calls (feed, generate, perplexity) release the GIL.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "attention/attention_accumulator.h"
#include "common/check.h"
#include "eval/perplexity.h"
#include "kv/kv_config.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/session.h"

namespace py = pybind11;
using namespace h2o;

namespace {

// Text that may end inside a UTF-8 sequence (a piece of a longer text): invalid bytes
// become U+FFFD instead of an exception.
py::str utf8_text(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

// A budget argument: None, a token count (int) or a string ("64", "20%").
std::optional<BudgetSpec> budget_arg(const py::object& v, const char* name) {
  if (v.is_none()) return std::nullopt;
  if (py::isinstance<py::bool_>(v))
    fail("{}: expected a token count or a percentage string like '20%', got a bool", name);
  if (py::isinstance<py::int_>(v)) return BudgetSpec::parse(py::str(v).cast<std::string>(), name);
  if (py::isinstance<py::str>(v)) return BudgetSpec::parse(v.cast<std::string>(), name);
  fail("{}: expected a token count (int) or a percentage string like '20%', got {}", name,
       py::str(py::type::of(v).attr("__name__")).cast<std::string>());
}

// The session keyword arguments shared by Model.session, generate and perplexity, in the
// order of H2O_KV_ARGS below.
struct KvArgs {
  std::string policy;
  py::object budget, recent;
  int sinks;
  std::string type, positions;
  uint64_t seed;
  int prefill_chunk;
  int threads;
};

// Checked session options, as the CLI's KvFlags::settings() and the batch reader build
// them: the library parses and validates every field.
SessionOptions session_options(const KvArgs& a) {
  SessionOptions so;
  KvSettings& s = so.kv;
  s.policy = a.policy;
  if (!a.budget.is_none() && a.policy == "full") fail("kv_budget: not used by policy full (set kv_policy too)");
  s.budget = budget_arg(a.budget, "kv_budget");
  s.recent = budget_arg(a.recent, "kv_recent");
  s.sinks = a.sinks;
  s.type = parse_kv_type(a.type, "kv_type");
  s.positions = parse_kv_positions(a.positions, "kv_positions");
  s.seed = a.seed;
  s.prefill_chunk = a.prefill_chunk;
  if (a.threads < 1 || a.threads > 1024) fail("threads: must be in [1, 1024], got {}", a.threads);
  so.threads = a.threads;
  resolve_kv(s, 1000);  // names and relations now (1000: any length works for a percentage)
  return so;
}

#define H2O_KV_PARAMS                                                                                   \
  const std::string &kv_policy, const py::object &kv_budget, const py::object &kv_recent, int kv_sinks, \
      const std::string &kv_type, const std::string &kv_positions, uint64_t kv_seed, int prefill_chunk, int threads
#define H2O_KV_VALUES \
  KvArgs { kv_policy, kv_budget, kv_recent, kv_sinks, kv_type, kv_positions, kv_seed, prefill_chunk, threads }
#define H2O_KV_ARGS                                                                                                  \
  py::arg("kv_policy") = "full", py::arg("kv_budget") = py::none(), py::arg("kv_recent") = py::none(),               \
  py::arg("kv_sinks") = 4, py::arg("kv_type") = "f32", py::arg("kv_positions") = "absolute", py::arg("kv_seed") = 0, \
  py::arg("prefill_chunk") = 0, py::arg("threads") = 1

py::dict kv_dict(const KvResolved& kv) {
  py::dict d;
  d["policy"] = kv.policy;
  d["budget"] = kv.budget;
  d["recent"] = kv.recent;
  d["sinks"] = kv.sinks;
  d["seed"] = kv.seed;
  d["type"] = kv_type_name(kv.type);
  d["positions"] = kv_positions_name(kv.positions);
  return d;
}

// A numpy array that owns `v` (no copy), shaped `shape`.
template <class T>
py::array_t<T> owned_array(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(std::move(shape), heap->data(), owner);
}

struct PyModel {
  std::shared_ptr<const Model> model;
};

class PySession {
 public:
  PySession(std::shared_ptr<const Model> model, const SessionOptions& so)
      : model_(std::move(model)), session_(model_, so) {}

  // Feeds tokens; returns the last logits [vocab] or, with all_logits, [n, vocab].
  py::array_t<float> feed(const std::vector<int32_t>& ids, bool all_logits) {
    Busy busy(*this);
    const size_t V = static_cast<size_t>(model_->config().vocab_size);
    std::vector<float> all;
    {
      py::gil_scoped_release nogil;
      session_.feed(ids, all_logits ? &all : nullptr);
    }
    if (all_logits)
      return owned_array(std::move(all), {static_cast<py::ssize_t>(ids.size()), static_cast<py::ssize_t>(V)});
    return last_logits();
  }

  py::array_t<float> last_logits() {
    const std::span<const float> l = session_.last_logits();
    return py::array_t<float>(static_cast<py::ssize_t>(l.size()), l.data());
  }

  void reset() {
    Busy busy(*this);
    session_.reset();
    if (acc_) acc_->clear();
  }

  void observe_attention(bool on) {
    Busy busy(*this);
    if (on) {
      const ModelConfig& c = model_->config();
      if (!acc_) acc_ = std::make_unique<AttentionAccumulator>(c.n_layers, c.n_heads);
      acc_->clear();
      session_.set_attention_observer([acc = acc_.get()](const AttentionRow& row) { acc->observe(row); });
    } else {
      session_.set_attention_observer({});
    }
    observing_ = on;
  }

  void clear_attention() {
    Busy busy(*this);
    if (acc_) acc_->clear();
  }

  // Per layer [n_heads, n_positions] float64: accumulated probability mass per key position.
  py::list attention() {
    Busy busy(*this);
    const AttentionAccumulator& a = accumulator();
    py::list out;
    for (int l = 0; l < a.n_layers(); ++l) out.append(owned_array(a.accumulated(l), {a.n_heads(), a.n_positions()}));
    return out;
  }

  // Per layer [n_heads, n_positions] float32: each head's latest attention row.
  py::list attention_last() {
    Busy busy(*this);
    const AttentionAccumulator& a = accumulator();
    py::list out;
    for (int l = 0; l < a.n_layers(); ++l) out.append(owned_array(a.last_row(l), {a.n_heads(), a.n_positions()}));
    return out;
  }

  // [n_layers, n_heads] int64: query rows observed.
  py::array_t<int64_t> attention_rows() {
    Busy busy(*this);
    const AttentionAccumulator& a = accumulator();
    std::vector<int64_t> r;
    for (int l = 0; l < a.n_layers(); ++l)
      for (int h = 0; h < a.n_heads(); ++h) r.push_back(a.rows(l, h));
    return owned_array(std::move(r), {a.n_layers(), a.n_heads()});
  }

  // Per layer [n_kv_heads, n_slots] int32: the positions the cache holds, ascending.
  py::list kept_positions() {
    Busy busy(*this);
    const KvCache& cache = session_.kv_cache();
    const int n_kv = model_->config().n_kv_heads;
    py::list out;
    for (int l = 0; l < model_->config().n_layers; ++l) {
      const size_t n = static_cast<size_t>(cache.n_slots(l));
      std::vector<int32_t> pos(static_cast<size_t>(n_kv) * n);
      for (int h = 0; h < n_kv; ++h) {
        int32_t* row = pos.data() + static_cast<size_t>(h) * n;
        if (n > 0) std::copy_n(cache.positions(l, h), n, row);
        std::sort(row, row + n);
      }
      out.append(owned_array(std::move(pos), {n_kv, static_cast<py::ssize_t>(n)}));
    }
    return out;
  }

  const Session& session() const { return session_; }
  bool observing() const { return observing_; }

 private:
  // Calls on one session from two Python threads (the GIL is released while feeding) are
  // refused instead of racing.
  class Busy {
   public:
    explicit Busy(PySession& s) : lock_(s.busy_, std::try_to_lock) {
      if (!lock_.owns_lock()) fail("session is in use by another thread");
    }

   private:
    std::unique_lock<std::mutex> lock_;
  };

  const AttentionAccumulator& accumulator() const {
    if (!acc_) fail("attention: not observed; call observe_attention(True) before feeding");
    return *acc_;
  }

  std::shared_ptr<const Model> model_;
  Session session_;
  std::unique_ptr<AttentionAccumulator> acc_;
  bool observing_ = false;
  std::mutex busy_;
};

}  // namespace

PYBIND11_MODULE(_h2o, m) {
  m.doc() = "h2o.cpp: LLM inference with H2O KV-cache eviction (see docs/python.md)";
  py::register_exception<Error>(m, "Error", PyExc_RuntimeError);
  m.def("kv_policy_names", &kv_policy_names, "The KV eviction policies: full, window, sink, h2o, tova, random.");

  py::class_<PyModel>(m, "Model", "A loaded model: a GGUF file, a Hugging Face directory, or a llama2.c checkpoint.")
      .def(py::init([](const std::string& path, const std::string& tokenizer) {
             py::gil_scoped_release nogil;
             return PyModel{Model::load({path, tokenizer})};
           }),
           py::arg("path"), py::arg("tokenizer") = "",
           "Loads `path`; `tokenizer` is the tokenizer.bin of a llama2.c checkpoint.")
      .def(
          "tokenize",
          [](const PyModel& self, const std::string& text, std::optional<bool> add_bos) {
            EncodeOptions eo;
            eo.add_bos = add_bos;
            return self.model->tokenizer().encode(text, eo);
          },
          py::arg("text"), py::arg("add_bos") = py::none(),
          "Token ids of `text`. add_bos: None = what the vocabulary does (as generate), True/False to force.")
      .def(
          "detokenize",
          [](const PyModel& self, const std::vector<int32_t>& ids) {
            return utf8_text(self.model->tokenizer().decode(ids));
          },
          py::arg("ids"), "The text of token ids (control tokens such as BOS give nothing).")
      .def(
          "piece", [](const PyModel& self, int32_t id) { return utf8_text(self.model->tokenizer().piece(id)); },
          py::arg("id"), "Display text of one token (byte tokens show as <0xXX>).")
      .def_property_readonly("vocab_size", [](const PyModel& s) { return s.model->config().vocab_size; })
      .def_property_readonly("context_length", [](const PyModel& s) { return s.model->config().context_length; })
      .def_property_readonly("n_layers", [](const PyModel& s) { return s.model->config().n_layers; })
      .def_property_readonly("n_heads", [](const PyModel& s) { return s.model->config().n_heads; })
      .def_property_readonly("n_kv_heads", [](const PyModel& s) { return s.model->config().n_kv_heads; })
      .def_property_readonly("head_dim", [](const PyModel& s) { return s.model->config().head_dim; })
      .def_property_readonly("dim", [](const PyModel& s) { return s.model->config().dim; })
      .def_property_readonly("arch", [](const PyModel& s) { return s.model->config().arch; })
      .def_property_readonly("bos_id", [](const PyModel& s) { return s.model->tokenizer().bos_id(); })
      .def_property_readonly("eos_id", [](const PyModel& s) { return s.model->tokenizer().eos_id(); })
      .def_property_readonly("path", [](const PyModel& s) { return s.model->path(); })
      .def("describe", [](const PyModel& s) { return s.model->describe(); })
      .def("__repr__", [](const PyModel& s) { return "<h2o.Model " + s.model->describe() + ">"; })
      .def(
          "session",
          [](const PyModel& self, int expected_length, H2O_KV_PARAMS) {
            SessionOptions so = session_options(H2O_KV_VALUES);
            if (expected_length < 0) fail("expected_length: must be at least 0, got {}", expected_length);
            so.expected_length = expected_length;
            return std::make_unique<PySession>(self.model, so);
          },
          py::kw_only(), py::arg("expected_length") = 0, H2O_KV_ARGS,
          "A new sequence with its own KV cache. Percentage budgets need expected_length.");

  py::class_<PySession>(m, "Session", "One sequence: a KV cache under a policy. Not for concurrent use.")
      .def("feed", &PySession::feed, py::arg("ids"), py::arg("all_logits") = false,
           "Runs token ids through the model. Returns float32 logits [vocab] after the last token, or [n, vocab] "
           "after every token with all_logits=True.")
      .def("reset", &PySession::reset, "Starts a new sequence (the attention record is cleared too).")
      .def_property_readonly("n_past", [](const PySession& s) { return s.session().n_past(); })
      .def_property_readonly("kv_bytes", [](const PySession& s) { return s.session().kv_bytes(); })
      .def_property_readonly("kv_bytes_peak", [](const PySession& s) { return s.session().kv_bytes_peak(); })
      .def_property_readonly("kv", [](const PySession& s) { return kv_dict(s.session().kv()); })
      .def_property_readonly("context_length", [](const PySession& s) { return s.session().context_length(); })
      .def_property_readonly("last_logits", &PySession::last_logits)
      .def("observe_attention", &PySession::observe_attention, py::arg("enabled") = true,
           "Starts (clearing the record) or stops recording attention of later feeds. Attention then runs on one "
           "thread.")
      .def_property_readonly("observing_attention", &PySession::observing)
      .def("clear_attention", &PySession::clear_attention, "Forgets the attention recorded so far.")
      .def("attention", &PySession::attention,
           "Per layer, float64 [n_heads, n_positions]: the probability mass each key position received, summed over "
           "the query rows recorded (H2O's accumulated attention).")
      .def("attention_last", &PySession::attention_last,
           "Per layer, float32 [n_heads, n_positions]: each head's latest attention row (0 where not attended).")
      .def("attention_rows", &PySession::attention_rows, "int64 [n_layers, n_heads]: query rows recorded.")
      .def("kept_positions", &PySession::kept_positions,
           "Per layer, int32 [n_kv_heads, n_slots]: the token positions the KV cache holds, ascending.");

  py::class_<GenerateResult>(m, "GenerateResult")
      .def_readonly("prompt_tokens", &GenerateResult::prompt_tokens)
      .def_readonly("tokens", &GenerateResult::tokens)
      .def_property_readonly("prompt_text", [](const GenerateResult& r) { return utf8_text(r.prompt_text); })
      .def_property_readonly("text", [](const GenerateResult& r) { return utf8_text(r.text); })
      .def_readonly("stop_reason", &GenerateResult::stop_reason)
      .def_readonly("prefill_seconds", &GenerateResult::prefill_seconds)
      .def_readonly("decode_seconds", &GenerateResult::decode_seconds)
      .def_readonly("kv_bytes", &GenerateResult::kv_bytes)
      .def_readonly("kv_bytes_peak", &GenerateResult::kv_bytes_peak)
      .def_readonly("kv_bytes_trace", &GenerateResult::kv_bytes_trace)
      .def_property_readonly("kv", [](const GenerateResult& r) { return kv_dict(r.kv); })
      .def("__repr__", [](const GenerateResult& r) {
        return py::str("<h2o.GenerateResult {} tokens, stop {}, kv_bytes_peak {}>")
            .format(r.tokens.size(), r.stop_reason, r.kv_bytes_peak);
      });

  m.def(
      "generate",
      [](const PyModel& model, const std::string& prompt, int n_predict, float temperature, int top_k, float top_p,
         uint64_t seed, bool ignore_eos, const std::function<void(py::str)>& on_text, H2O_KV_PARAMS) {
        GenerateOptions o;
        o.prompt = prompt;
        o.n_predict = n_predict;
        o.ignore_eos = ignore_eos;
        o.sampling = SamplerParams{temperature, top_k, top_p, seed};
        o.session = session_options(H2O_KV_VALUES);
        std::function<void(std::string_view)> stream;
        if (on_text) {
          stream = [&on_text](std::string_view s) {
            py::gil_scoped_acquire gil;
            on_text(utf8_text(std::string(s)));
          };
        }
        py::gil_scoped_release nogil;
        return generate(model.model, o, stream);
      },
      py::arg("model"), py::arg("prompt"), py::kw_only(), py::arg("n_predict") = 128, py::arg("temperature") = 0.8f,
      py::arg("top_k") = 0, py::arg("top_p") = 1.0f, py::arg("seed") = 0, py::arg("ignore_eos") = false,
      py::arg("on_text") = py::none(), H2O_KV_ARGS,
      "Encodes the prompt (BOS first), prefills it and samples up to n_predict tokens (temperature 0 = greedy). "
      "on_text(str) sees the prompt, then each piece as it is produced.");

  py::class_<PerplexityResult>(m, "PerplexityResult")
      .def_readonly("n_tokens", &PerplexityResult::n_tokens)
      .def_readonly("n_windows", &PerplexityResult::n_windows)
      .def_readonly("mean_nll", &PerplexityResult::mean_nll)
      .def_readonly("ppl", &PerplexityResult::ppl)
      .def_readonly("kv_bytes_peak", &PerplexityResult::kv_bytes_peak)
      .def_readonly("seconds", &PerplexityResult::seconds)
      .def_property_readonly("nll",
                             [](const PerplexityResult& r) {
                               return py::array_t<double>(static_cast<py::ssize_t>(r.nll.size()), r.nll.data());
                             })
      .def_property_readonly("segments",
                             [](const PerplexityResult& r) {
                               py::list out;
                               for (const PerplexitySegment& s : r.segments) {
                                 py::dict d;
                                 d["first"] = s.first;
                                 d["n"] = s.n;
                                 d["mean_nll"] = s.mean_nll;
                                 d["ppl"] = s.ppl;
                                 out.append(d);
                               }
                               return out;
                             })
      .def_property_readonly("kv", [](const PerplexityResult& r) { return kv_dict(r.kv); })
      .def("__repr__", [](const PerplexityResult& r) {
        return py::str("<h2o.PerplexityResult ppl {:.4f} over {} tokens>").format(r.ppl, r.n_tokens);
      });

  m.def(
      "perplexity",
      [](const PyModel& model, const py::object& text, int ctx, int segment, H2O_KV_PARAMS) {
        PerplexityOptions o;
        o.ctx = ctx;
        o.segment = segment;
        o.session = session_options(H2O_KV_VALUES);
        std::vector<int32_t> ids;
        if (py::isinstance<py::str>(text)) {
          // As `h2o perplexity`: the text's tokens without BOS; every window starts with one.
          ids = model.model->tokenizer().encode(text.cast<std::string>(), false);
        } else {
          try {
            ids = text.cast<std::vector<int32_t>>();
          } catch (const py::cast_error&) {
            fail("perplexity: text must be a str or a sequence of token ids");
          }
        }
        py::gil_scoped_release nogil;
        return perplexity(model.model, ids, o);
      },
      py::arg("model"), py::arg("text"), py::kw_only(), py::arg("ctx") = 0, py::arg("segment") = 0, H2O_KV_ARGS,
      "Perplexity of `text` (a str, or token ids without BOS) in windows of ctx tokens (0 = the model's context), "
      "each from an empty cache under the KV policy.");
}
