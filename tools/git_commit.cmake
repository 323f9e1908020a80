# Writes OUT from TEMPLATE with BSBR_GIT_COMMIT = the commit of SOURCE_DIR's checkout: "<sha>", with
# "-dirty" when tracked files differ from it ("-unknown-state" when `git status` fails), or "unknown"
# without git or a repository. Run at every
# build (the bsbr_git_commit target); configure_file rewrites OUT only when the text changes, so an
# unchanged commit recompiles nothing.
# usage: cmake -DSOURCE_DIR=... -DTEMPLATE=... -DOUT=... -P tools/git_commit.cmake
set(BSBR_GIT_COMMIT "unknown")
find_program(GIT_EXECUTABLE git)
if(GIT_EXECUTABLE)
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" rev-parse HEAD
                  OUTPUT_VARIABLE sha RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(rc EQUAL 0 AND sha MATCHES "^[0-9a-f]+$")
    execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
                    OUTPUT_VARIABLE dirty RESULT_VARIABLE rc2 OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    set(BSBR_GIT_COMMIT "${sha}")
    if(NOT rc2 EQUAL 0)
      set(BSBR_GIT_COMMIT "${sha}-unknown-state")
    elseif(NOT dirty STREQUAL "")
      set(BSBR_GIT_COMMIT "${sha}-dirty")
    endif()
  endif()
endif()
configure_file("${TEMPLATE}" "${OUT}" @ONLY)
